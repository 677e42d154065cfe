//! Upload query strings: a function version's settings, and the image an archive upload names.

use kiln_types::NetworkMode;
use registry::{FunctionSettings, image_reference};

use crate::Verdict;

pub fn check(data: &[u8]) -> Verdict {
    let query = String::from_utf8_lossy(data);
    let _ = image_reference(Some(&query));
    let Ok(settings) = FunctionSettings::from_query(Some(&query), NetworkMode::None) else {
        return Verdict::Refused;
    };
    assert!((16..=16_384).contains(&settings.memory_mb));
    assert!((2..=262_144).contains(&settings.cpu_shares));
    assert!(
        settings
            .cpu_millicores
            .is_none_or(|millicores| (10..=64_000).contains(&millicores))
    );
    assert!((4..=32_768).contains(&settings.pids_limit));
    assert!((10..=900_000).contains(&settings.timeout_ms));
    assert!((1..=1_000).contains(&settings.max_concurrency));
    assert!(settings.min_warm <= settings.max_concurrency);
    assert!((1..=86_400).contains(&settings.idle_timeout_s));
    assert!(settings.egress_allow.is_empty() || settings.network == NetworkMode::Egress);
    for name in settings.env.keys() {
        assert!(
            !name.is_empty() && !name.starts_with("KILN_"),
            "env name `{name}` accepted"
        );
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "env name `{name}` accepted"
        );
    }
    let stored = serde_json::to_value(&settings).expect("settings serialize");
    assert_eq!(
        FunctionSettings::from_stored(&stored),
        settings,
        "settings change when stored"
    );
    let _ = settings.limits();
    Verdict::Accepted
}
