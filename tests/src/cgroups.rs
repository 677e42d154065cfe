//! Where a process's cgroups are on this host, cgroup v1, v2 or hybrid alike: read from
//! `/proc/<pid>/cgroup` and placed under the mounts `/proc/self/mountinfo` lists, never
//! from a hard-coded controller path. (Also compiled into the sandbox's container tests.)

use std::path::PathBuf;

/// One mounted cgroup hierarchy: its controllers (empty for cgroup2), where it is mounted,
/// and which cgroup is its root there.
pub(crate) struct Hierarchy {
    controllers: Vec<String>,
    mount_point: PathBuf,
    root: String,
}

/// The cgroup hierarchies a `/proc/<pid>/mountinfo` lists.
pub(crate) fn hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (mount, filesystem) = line.split_once(" - ")?;
            let fields: Vec<&str> = mount.split(' ').collect();
            let described: Vec<&str> = filesystem.split(' ').collect();
            let controllers = match *described.first()? {
                "cgroup2" => Vec::new(),
                "cgroup" => described
                    .get(2)?
                    .split(',')
                    .filter(|option| !matches!(*option, "rw" | "ro") && !option.contains('='))
                    .map(str::to_owned)
                    .collect(),
                _ => return None,
            };
            Some(Hierarchy {
                controllers,
                mount_point: PathBuf::from(fields.get(4)?),
                root: (*fields.get(3)?).to_owned(),
            })
        })
        .collect()
}

/// The folder of every cgroup `pid` is in whose path ends with `leaf` (a container's own
/// cgroups end with its id), one per mounted hierarchy.
pub fn cgroup_dirs(pid: i32, leaf: &str) -> Vec<PathBuf> {
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    dirs_of(&membership, &hierarchies(&mountinfo), leaf)
}

/// The folders of the cgroups in `membership` (a `/proc/<pid>/cgroup`) ending with `leaf`.
pub(crate) fn dirs_of(membership: &str, hierarchies: &[Hierarchy], leaf: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (
            parts.next(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        if !path.ends_with(&format!("/{leaf}")) {
            continue;
        }
        let wanted: Vec<&str> = controllers.split(',').filter(|name| !name.is_empty()).collect();
        let Some(hierarchy) = hierarchies.iter().find(|hierarchy| {
            hierarchy.controllers.len() == wanted.len()
                && wanted
                    .iter()
                    .all(|name| hierarchy.controllers.iter().any(|have| have == name))
        }) else {
            continue;
        };
        let relative = path
            .strip_prefix(hierarchy.root.trim_end_matches('/'))
            .unwrap_or(path);
        dirs.push(hierarchy.mount_point.join(relative.trim_start_matches('/')));
    }
    dirs
}
