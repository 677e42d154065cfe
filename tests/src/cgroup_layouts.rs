//! The cgroup finder on both layouts, as a v2 host (systemd's unified mount) and a v1 host
//! in hybrid mode show them: this host has only one of them, so the other is tested from
//! its text alone.

use std::path::PathBuf;

use crate::cgroups::{dirs_of, hierarchies};

const CONTAINER: &str = "kiln-acme-echo-1";

#[test]
fn a_cgroup_v2_host_has_one_folder_per_container() {
    let mountinfo = "24 30 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n\
                     25 30 0:23 / /proc rw,nosuid - proc proc rw\n";
    let membership = format!("0::/kiln/{CONTAINER}\n");
    let dirs = dirs_of(&membership, &hierarchies(mountinfo), CONTAINER);
    assert_eq!(dirs, [PathBuf::from(format!("/sys/fs/cgroup/kiln/{CONTAINER}"))]);
}

#[test]
fn a_hybrid_v1_host_has_one_folder_per_controller_and_the_unified_one() {
    let mountinfo = "30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n\
                     31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory\n\
                     32 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n\
                     33 25 0:29 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids\n\
                     34 25 0:30 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd\n";
    let membership = format!(
        "12:pids:/kiln/{CONTAINER}\n5:cpu,cpuacct:/kiln/{CONTAINER}\n4:memory:/kiln/{CONTAINER}\n\
         1:name=systemd:/system.slice/kilnd.service\n0::/system.slice/kilnd.service\n"
    );
    let mut dirs = dirs_of(&membership, &hierarchies(mountinfo), CONTAINER);
    dirs.sort();
    let expected: Vec<PathBuf> = ["cpu,cpuacct", "memory", "pids"]
        .iter()
        .map(|controller| PathBuf::from(format!("/sys/fs/cgroup/{controller}/kiln/{CONTAINER}")))
        .collect();
    assert_eq!(dirs, expected);
}

#[test]
fn a_hierarchy_mounted_from_a_sub_cgroup_is_joined_below_its_root() {
    // Inside a container of its own, kilnd sees its cgroup namespace's root mounted.
    let mountinfo = "40 38 0:31 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    let membership = format!("0::/docker/abc/kiln/{CONTAINER}\n");
    let dirs = dirs_of(&membership, &hierarchies(mountinfo), CONTAINER);
    assert_eq!(dirs, [PathBuf::from(format!("/sys/fs/cgroup/kiln/{CONTAINER}"))]);
    assert!(dirs_of(&membership, &hierarchies(mountinfo), "other").is_empty());
}
