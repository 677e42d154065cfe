//! A container spec for unit tests: made-up paths, small limits.

use crate::{ContainerNetwork, ContainerSpec, ProcessSpec};

pub(crate) fn spec(network: ContainerNetwork) -> ContainerSpec {
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
