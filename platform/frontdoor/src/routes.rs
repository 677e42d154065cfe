//! Every route Kiln answers, in one table: the router refuses anything else before a
//! handler sees it (404 or 405), metrics label requests by the pattern (never the raw path,
//! so callers cannot mint label values), and a test holds the table and the OpenAPI
//! document to each other.

use std::sync::LazyLock;

use http::Method;

/// One path pattern and the methods it accepts. `{x}` matches one segment; a final
/// `{path}` matches the rest of the path, slashes included, or nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub pattern: &'static str,
    pub methods: &'static [&'static str],
}

/// Methods a function is documented with; it is invoked with any method the caller uses
/// (WebDAV's, `QUERY`, ...), since the function sees the original request.
const INVOKE_METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"];

pub const INVOKE: &str = "/fn/{tenant}/{function}/{path}";

pub const ROUTES: &[Route] = &[
    Route {
        pattern: INVOKE,
        methods: INVOKE_METHODS,
    },
    Route {
        pattern: "/api/health",
        methods: &["GET"],
    },
    Route {
        pattern: "/api/health/detailed",
        methods: &["GET"],
    },
    Route {
        pattern: "/api/openapi.json",
        methods: &["GET"],
    },
    Route {
        pattern: "/metrics",
        methods: &["GET"],
    },
    Route {
        pattern: "/console",
        methods: &["GET"],
    },
    Route {
        pattern: "/console/{file}",
        methods: &["GET"],
    },
    Route {
        pattern: "/v1/events",
        methods: &["GET"],
    },
    Route {
        pattern: "/v1/events/ws",
        methods: &["GET"],
    },
    Route {
        pattern: "/v1/audit",
        methods: &["GET"],
    },
    Route {
        pattern: "/v1/functions",
        methods: &["GET"],
    },
    Route {
        pattern: "/v1/functions/{name}",
        methods: &["GET", "PUT", "DELETE"],
    },
    Route {
        pattern: "/v1/functions/{name}/current",
        methods: &["PUT"],
    },
    Route {
        pattern: "/v1/functions/{name}/instances",
        methods: &["POST"],
    },
    Route {
        pattern: "/v1/functions/{name}/logs",
        methods: &["GET"],
    },
    Route {
        pattern: "/v1/functions/{name}/webhook",
        methods: &["GET", "PUT", "DELETE"],
    },
    Route {
        pattern: "/v1/instances",
        methods: &["GET"],
    },
    Route {
        pattern: "/v1/instances/{id}",
        methods: &["GET"],
    },
    Route {
        pattern: "/v1/instances/{id}/checkpoints",
        methods: &["GET"],
    },
    Route {
        pattern: "/v1/instances/{id}/events",
        methods: &["GET"],
    },
    Route {
        pattern: "/v1/instances/{id}/signals",
        methods: &["POST"],
    },
    Route {
        pattern: "/v1/admin/tenants",
        methods: &["GET", "POST"],
    },
    Route {
        pattern: "/v1/admin/tenants/{name}/keys",
        methods: &["POST"],
    },
    Route {
        pattern: "/v1/admin/tenants/{name}/keys/{kid}",
        methods: &["DELETE"],
    },
    Route {
        pattern: "/v1/admin/audit",
        methods: &["GET"],
    },
];

/// The method as a metrics label: one the route takes, else `other`, so callers cannot
/// mint label values with made-up methods.
pub fn method_label(method: &Method, lookup: &Lookup) -> &'static str {
    let known = match lookup {
        Lookup::Found(route) | Lookup::WrongMethod(route) => route.methods,
        Lookup::Missing => &[],
    };
    known
        .iter()
        .find(|known| **known == method.as_str())
        .copied()
        .unwrap_or("other")
}

/// What the table says of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(&'static Route),
    /// The path exists but not with this method; the methods it takes.
    WrongMethod(&'static Route),
    Missing,
}

pub fn lookup(method: &Method, path: &str) -> Lookup {
    // One trailing slash is forgiven on management routes (`/v1/functions/`); an
    // invocation's path is the function's own, slash included.
    let found = ROUTER.at(path).or_else(|error| match path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => ROUTER.at(trimmed),
        _ => Err(error),
    });
    let Ok(found) = found else {
        return Lookup::Missing;
    };
    let route = *found.value;
    if route.pattern == INVOKE || route.methods.contains(&method.as_str()) {
        Lookup::Found(route)
    } else {
        Lookup::WrongMethod(route)
    }
}

/// The table as matchit's radix tree. A pattern's final `{path}` is its catch-all, which
/// matchit writes `{*path}` and which matches nothing empty, so the bare prefix and the
/// prefix with a slash are routes of their own.
static ROUTER: LazyLock<matchit::Router<&'static Route>> = LazyLock::new(|| {
    let mut router = matchit::Router::new();
    for route in ROUTES {
        let paths = match route.pattern.strip_suffix("/{path}") {
            Some(prefix) => vec![
                prefix.to_owned(),
                format!("{prefix}/"),
                format!("{prefix}/{{*path}}"),
            ],
            None => vec![route.pattern.to_owned()],
        };
        for path in paths {
            router
                .insert(path, route)
                .unwrap_or_else(|error| panic!("route {}: {error}", route.pattern));
        }
    }
    router
});

#[cfg(test)]
mod tests {
    use super::*;

    fn found(method: Method, path: &str) -> Option<&'static str> {
        match lookup(&method, path) {
            Lookup::Found(route) => Some(route.pattern),
            _ => None,
        }
    }

    #[test]
    fn patterns_match_whole_paths() {
        assert_eq!(found(Method::GET, "/v1/functions"), Some("/v1/functions"));
        assert_eq!(found(Method::GET, "/v1/functions/"), Some("/v1/functions"));
        assert_eq!(
            found(Method::GET, "/v1/functions/hello"),
            Some("/v1/functions/{name}")
        );
        assert_eq!(
            found(Method::GET, "/v1/functions/hello/logs"),
            Some("/v1/functions/{name}/logs")
        );
        assert_eq!(found(Method::GET, "/v1/functions/hello/logs/x"), None);
        assert_eq!(found(Method::GET, "/v1/functions//logs"), None);
        assert_eq!(found(Method::GET, "/v1/functionsx"), None);
        assert_eq!(found(Method::GET, "/"), None);
    }

    #[test]
    fn invoke_paths_take_any_rest() {
        for path in [
            "/fn/acme/hello",
            "/fn/acme/hello/",
            "/fn/acme/hello/a/b/c",
            "/fn/acme/hello@3/x",
        ] {
            assert_eq!(found(Method::POST, path), Some(INVOKE), "{path}");
        }
        assert_eq!(found(Method::POST, "/fn/acme"), None);
        assert_eq!(found(Method::POST, "/fn//hello"), None);
    }

    #[test]
    fn wrong_methods_are_told_apart_from_missing_routes() {
        assert!(
            matches!(lookup(&Method::POST, "/v1/functions"), Lookup::WrongMethod(route) if route.methods == ["GET"])
        );
        assert_eq!(lookup(&Method::GET, "/v2/functions"), Lookup::Missing);
        let propfind = Method::from_bytes(b"PROPFIND").unwrap();
        assert!(matches!(lookup(&propfind, "/fn/a/b/c"), Lookup::Found(route) if route.pattern == INVOKE));
        assert!(matches!(
            lookup(&propfind, "/v1/functions"),
            Lookup::WrongMethod(_)
        ));
        assert_eq!(method_label(&propfind, &lookup(&propfind, "/fn/a/b/c")), "other");
        assert_eq!(
            method_label(&Method::GET, &lookup(&Method::GET, "/v1/functions")),
            "GET"
        );
        assert_eq!(method_label(&Method::GET, &Lookup::Missing), "other");
    }

    #[test]
    fn every_pattern_is_unique() {
        for (index, route) in ROUTES.iter().enumerate() {
            assert!(
                ROUTES[index + 1..]
                    .iter()
                    .all(|other| other.pattern != route.pattern),
                "{} twice",
                route.pattern
            );
        }
    }
}
