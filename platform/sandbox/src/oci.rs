//! Turns a [`ContainerSpec`] into an OCI runtime `config.json` with Kiln's isolation defaults.

use serde_json::{Value, json};

use crate::ContainerSpec;

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

/// The OCI config: new pid/mount/ipc/uts (and net unless asked) namespaces, read-only
/// root, no capabilities, `no_new_privileges`, a seccomp filter, cgroup limits.
pub fn config_json(spec: &ContainerSpec) -> Value {
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "mount"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
    ];
    if !spec.network {
        namespaces.push(json!({"type": "network"}));
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
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=1m"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777", format!("size={}", spec.tmpfs_bytes)]},
            {"destination": RUNTIME_MOUNT, "type": "bind", "source": spec.runtime_dir,
             "options": ["rbind", "rw", "nosuid", "nodev", "noexec"]},
        ],
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
    use crate::ProcessSpec;

    fn spec(network: bool) -> ContainerSpec {
        ContainerSpec {
            id: "c1".into(),
            rootfs: "/data/rootfs/abc".into(),
            runtime_dir: "/data/run/c1".into(),
            stdout_path: "/data/logs/c1.out".into(),
            stderr_path: "/data/logs/c1.err".into(),
            process: ProcessSpec {
                env: vec!["A=1".into()],
                ..ProcessSpec::executable()
            },
            memory_bytes: 64 << 20,
            cpu_shares: 512,
            cpu_quota_us: Some(50_000),
            pids_limit: 32,
            network,
            tmpfs_bytes: 1 << 20,
        }
    }

    #[test]
    fn isolates_by_default() {
        let config = config_json(&spec(false));
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

    #[test]
    fn network_setting_keeps_the_host_network() {
        let config = config_json(&spec(true));
        let has_network_namespace = config["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|namespace| namespace["type"] == "network");
        assert!(!has_network_namespace);
    }
}
