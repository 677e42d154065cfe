//! Turns a [`ContainerSpec`] into an OCI runtime `config.json` with Kiln's isolation defaults.

use serde_json::{Value, json};

use crate::{ContainerNetwork, ContainerSpec};

/// Where the runtime socket folder is mounted inside the container.
pub const RUNTIME_MOUNT: &str = "/run/kiln";

/// System calls a function never needs and that widen the kernel surface it can reach:
/// namespace and mount changes, kernel modules and keyrings, tracing other processes,
/// clock and swap administration. They fail with `EPERM`. (Most already need capabilities
/// the container does not have; the filter also closes the ones that do not.)
const DENIED_SYSCALLS: [&str; 45] = [
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "move_mount",
    "name_to_handle_at",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "sysfs",
    "syslog",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
];

/// The OCI config: new pid/mount/ipc/uts namespaces, a network namespace (new, prepared,
/// or none for the host's), read-only root, no capabilities, `no_new_privileges`, a seccomp
/// filter, cgroup limits.
pub fn config_json(spec: &ContainerSpec) -> Value {
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "mount"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
    ];
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=1m"]}),
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "nodev", "mode=1777", format!("size={}", spec.tmpfs_bytes)]}),
        json!({"destination": RUNTIME_MOUNT, "type": "bind", "source": spec.runtime_dir,
               "options": ["rbind", "rw", "nosuid", "nodev", "noexec"]}),
    ];
    match &spec.network {
        ContainerNetwork::Isolated => namespaces.push(json!({"type": "network"})),
        ContainerNetwork::Host => {}
        ContainerNetwork::Join {
            namespace,
            resolv_conf,
        } => {
            namespaces.push(json!({"type": "network", "path": namespace}));
            mounts.push(
                json!({"destination": "/etc/resolv.conf", "type": "bind", "source": resolv_conf,
                               "options": ["rbind", "ro", "nosuid", "nodev", "noexec"]}),
            );
        }
    }
    let mut cpu = json!({"shares": spec.cpu_shares});
    if let Some(quota) = spec.cpu_quota_us {
        cpu["quota"] = json!(quota);
        cpu["period"] = json!(100_000);
    }
    let no_capabilities: Vec<String> = Vec::new();
    let process = &spec.process;
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {
                "uid": process.uid,
                "gid": process.gid,
                "additionalGids": process.additional_gids,
            },
            "args": process.args,
            "env": process.env,
            "cwd": process.cwd,
            "capabilities": {
                "bounding": no_capabilities,
                "effective": no_capabilities,
                "permitted": no_capabilities,
                "inheritable": no_capabilities,
                "ambient": no_capabilities,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true,
        },
        "root": {"path": spec.rootfs, "readonly": true},
        "hostname": "kiln",
        "mounts": mounts,
        "linux": {
            "cgroupsPath": format!("/kiln/{}", spec.id),
            "namespaces": namespaces,
            "resources": {
                "devices": [{"allow": false, "access": "rwm"}],
                "memory": {"limit": spec.memory_bytes},
                "cpu": cpu,
                "pids": {"limit": spec.pids_limit},
            },
            "maskedPaths": [
                "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                "/proc/scsi", "/sys/firmware",
            ],
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": DENIED_SYSCALLS.as_slice(), "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
            },
            "readonlyPaths": [
                "/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_spec::spec;

    #[test]
    fn isolates_by_default() {
        let config = config_json(&spec(ContainerNetwork::Isolated));
        let namespaces: Vec<&str> = config["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|namespace| namespace["type"].as_str().unwrap())
            .collect();
        assert_eq!(namespaces, ["pid", "mount", "ipc", "uts", "network"]);
        assert_eq!(config["root"]["readonly"], true);
        assert_eq!(config["process"]["noNewPrivileges"], true);
        assert_eq!(config["process"]["capabilities"]["bounding"], json!([]));
        assert_eq!(config["linux"]["cgroupsPath"], "/kiln/c1");
        assert_eq!(config["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(config["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(config["linux"]["resources"]["pids"]["limit"], 32);
    }

    fn network_namespaces(config: &Value) -> Vec<Value> {
        config["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|namespace| namespace["type"] == "network")
            .cloned()
            .collect()
    }

    #[test]
    fn host_network_has_no_network_namespace() {
        let config = config_json(&spec(ContainerNetwork::Host));
        assert!(network_namespaces(&config).is_empty());
    }

    #[test]
    fn egress_joins_its_prepared_namespace_and_resolver() {
        let config = config_json(&spec(ContainerNetwork::Join {
            namespace: "/run/netns/kiln-abcde-2".into(),
            resolv_conf: "/data/resolv.conf".into(),
        }));
        assert_eq!(
            network_namespaces(&config),
            [json!({"type": "network", "path": "/run/netns/kiln-abcde-2"})]
        );
        let resolv_conf = config["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|mount| mount["destination"] == "/etc/resolv.conf")
            .expect("resolv.conf is mounted");
        assert_eq!(resolv_conf["source"], "/data/resolv.conf");
        assert!(resolv_conf["options"].as_array().unwrap().contains(&json!("ro")));
    }
}
