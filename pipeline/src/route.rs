//! Which destination a command means, decided once. A mapping's `target:` names up to three
//! places (an engine directory, a stage URL, a Milvus server) and `etl stage --to` names a
//! fourth; before this module each command read them its own way and they disagreed (with
//! `engine` + `milvus`, `etl run` wrote to the engine while `etl plan` applied Milvus' rules).
//! [`resolve`] turns the combination into a [`Route`] by one table, refusing the ambiguous ones
//! with what to write instead, and every command follows the route it returns.
//!
//! | `engine` | `stage` | `milvus` | `etl stage --to T` | route                                  |
//! |----------|---------|----------|--------------------|----------------------------------------|
//! | E        |         |          |                    | direct into the engine at E            |
//! |          | S       |          |                    | stage at S                             |
//! |          |         | M        |                    | direct into Milvus M                   |
//! | E        | S       |          |                    | stage at S, then import into E         |
//! |          | S       | M        |                    | stage at S, then import into M         |
//! | E        |         | M        |                    | refused: which one?                    |
//! | E        | S       | M        |                    | refused: which one?                    |
//! | any      | any     | any      | T                  | stage at T (for M's version, if named) |
//!
//! `postgres: URL` (a Postgres-compatible database) is a route of its own: direct into it, and
//! refused beside any of the other three.
//!
//! A target named on the command line (`--target`) is a [`TargetUrl`]: `milvus://`, `http://`
//! or `https://` is a Milvus server, anything else an engine directory.

use std::path::PathBuf;

use etl_mappings::ParsedMapping;

use crate::error::PipelineError;

/// A place a run writes or a command reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// The embedded engine in this directory.
    Engine(PathBuf),
    /// A Milvus server.
    Milvus(String),
    /// A Postgres-compatible database.
    Postgres(String),
    /// Parquet files in Milvus' bulk-import layout at `url`, fitted to the rules of the Milvus
    /// at `for_milvus` when one is named; `import_follows` when this command imports them next.
    Stage {
        /// The stage's URL.
        url: String,
        /// The Milvus whose version rules the files follow.
        for_milvus: Option<String>,
        /// The same command imports the stage afterwards.
        import_follows: bool,
    },
}

/// What a run does, from the mapping's `target:` and the command's flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Load straight into a destination.
    Direct(Destination),
    /// Only stage: Parquet files in Milvus' bulk-import layout at `url`, fitted to the rules of
    /// the Milvus at `for_milvus` when the mapping names one.
    Stage {
        /// The stage's URL.
        url: String,
        /// The Milvus whose version rules the files follow.
        for_milvus: Option<String>,
    },
    /// Stage at `stage`, then import the stage into `into`.
    StageThenImport {
        /// The stage's URL.
        stage: String,
        /// Where the import goes.
        into: Destination,
    },
}

impl Route {
    /// Where the run writes: the destination, or the stage of a staged route.
    pub fn writes(&self) -> Destination {
        match self {
            Route::Direct(d) => d.clone(),
            Route::Stage { url, for_milvus } => Destination::Stage {
                url: url.clone(),
                for_milvus: for_milvus.clone(),
                import_follows: false,
            },
            Route::StageThenImport { stage, into } => Destination::Stage {
                url: stage.clone(),
                for_milvus: match into {
                    Destination::Milvus(m) => Some(m.clone()),
                    _ => None,
                },
                import_follows: true,
            },
        }
    }

    /// The stage imported after it is written, and where.
    pub fn import_after(&self) -> Option<(&str, &Destination)> {
        match self {
            Route::StageThenImport { stage, into } => Some((stage, into)),
            _ => None,
        }
    }

    /// Where the collections are once the route is done (the stage, for a stage only): what
    /// `etl verify` reads.
    pub fn holds(&self) -> Destination {
        match self {
            Route::StageThenImport { into, .. } => into.clone(),
            _ => self.writes(),
        }
    }
}

/// The route of `mapping` for a command; `stage_to` is `etl stage --to`.
pub fn resolve(mapping: &ParsedMapping, stage_to: Option<&str>) -> Result<Route, PipelineError> {
    let t = &mapping.file.target;
    let file = mapping.locator.file();
    // Relative to the working directory, as the CLI's `--target` is.
    let engine = || PathBuf::from(t.engine.as_deref().unwrap_or_default());
    if let Some(pg) = &t.postgres {
        if stage_to.is_some() || t.engine.is_some() || t.stage.is_some() || t.milvus.is_some() {
            return Err(PipelineError::Usage {
                message: format!(
                    "{file}: `target: postgres` moves tables into a database; it cannot be combined with `engine`, `stage`, `milvus` or `etl stage` (write a second mapping for those)"
                ),
            });
        }
        return Ok(Route::Direct(Destination::Postgres(pg.clone())));
    }
    if let Some(url) = stage_to {
        return Ok(Route::Stage {
            url: url.to_string(),
            for_milvus: t.milvus.clone(),
        });
    }
    match (&t.engine, &t.stage, &t.milvus) {
        (Some(_), None, None) => Ok(Route::Direct(Destination::Engine(engine()))),
        (None, Some(s), None) => Ok(Route::Stage {
            url: s.clone(),
            for_milvus: None,
        }),
        (None, None, Some(m)) => Ok(Route::Direct(Destination::Milvus(m.clone()))),
        (Some(_), Some(s), None) => Ok(Route::StageThenImport {
            stage: s.clone(),
            into: Destination::Engine(engine()),
        }),
        (None, Some(s), Some(m)) => Ok(Route::StageThenImport {
            stage: s.clone(),
            into: Destination::Milvus(m.clone()),
        }),
        (Some(_), _, Some(_)) => Err(PipelineError::Usage {
            message: format!(
                "{file}: `target` names both `engine` and `milvus`, so it is not clear where the collections go; keep `engine:` to load the embedded engine, or `milvus:` to load the server (with `stage:` beside it to load it through a staged bulk import)"
            ),
        }),
        (None, None, None) => Err(PipelineError::Usage {
            message: format!(
                "{file}: `target` needs at least one of `engine`, `stage`, `milvus` or `postgres`"
            ),
        }),
    }
}

/// A target named on the command line: a Milvus server or an engine directory, parsed once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetUrl {
    /// `milvus://host:port` (or `http(s)://`): a Milvus server.
    Milvus(String),
    /// `postgres://…` (or `postgresql://`): a Postgres-compatible database.
    Postgres(String),
    /// Anything else: the embedded engine's directory.
    Engine(PathBuf),
}

impl TargetUrl {
    /// Parses `--target`.
    pub fn parse(text: &std::path::Path) -> TargetUrl {
        match text.to_str() {
            Some(s)
                if s.starts_with("milvus://")
                    || s.starts_with("http://")
                    || s.starts_with("https://") =>
            {
                TargetUrl::Milvus(s.to_string())
            }
            Some(s) if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                TargetUrl::Postgres(s.to_string())
            }
            _ => TargetUrl::Engine(text.to_path_buf()),
        }
    }

    /// The destination it names.
    pub fn destination(&self) -> Destination {
        match self {
            TargetUrl::Milvus(url) => Destination::Milvus(url.clone()),
            TargetUrl::Postgres(url) => Destination::Postgres(url.clone()),
            TargetUrl::Engine(dir) => Destination::Engine(dir.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(target: &str) -> ParsedMapping {
        let text = format!(
            "version: 1\nsource:\n  postgres: postgres://u@h/db\ntarget:\n{target}tables: []\n"
        );
        etl_mappings::parse_mapping(&text, "dir/m.yaml", &|_| None).unwrap()
    }

    /// Every row of the table in the module docs, the refused ones included.
    #[test]
    fn every_combination_routes_as_the_table_says() {
        let e = || Destination::Engine(PathBuf::from("data"));
        let m = || "http://m:19530".to_string();
        let cases: Vec<(&str, Option<&str>, Option<Route>)> = vec![
            ("  engine: data\n", None, Some(Route::Direct(e()))),
            (
                "  stage: s3://b/p\n",
                None,
                Some(Route::Stage {
                    url: "s3://b/p".into(),
                    for_milvus: None,
                }),
            ),
            (
                "  milvus: http://m:19530\n",
                None,
                Some(Route::Direct(Destination::Milvus(m()))),
            ),
            (
                "  engine: data\n  stage: s3://b/p\n",
                None,
                Some(Route::StageThenImport {
                    stage: "s3://b/p".into(),
                    into: e(),
                }),
            ),
            (
                "  stage: s3://b/p\n  milvus: http://m:19530\n",
                None,
                Some(Route::StageThenImport {
                    stage: "s3://b/p".into(),
                    into: Destination::Milvus(m()),
                }),
            ),
            ("  engine: data\n  milvus: http://m:19530\n", None, None),
            (
                "  engine: data\n  stage: s3://b/p\n  milvus: http://m:19530\n",
                None,
                None,
            ),
            (
                "  engine: data\n  stage: s3://b/p\n  milvus: http://m:19530\n",
                Some("file:///t"),
                Some(Route::Stage {
                    url: "file:///t".into(),
                    for_milvus: Some(m()),
                }),
            ),
            (
                "  engine: data\n",
                Some("file:///t"),
                Some(Route::Stage {
                    url: "file:///t".into(),
                    for_milvus: None,
                }),
            ),
        ];
        for (target, to, want) in cases {
            let got = resolve(&mapping(target), to);
            match want {
                Some(w) => assert_eq!(got.unwrap(), w, "{target}"),
                None => {
                    let msg = got.unwrap_err().to_string();
                    assert!(
                        msg.contains("dir/m.yaml") && msg.contains("both `engine` and `milvus`"),
                        "{target}: {msg}"
                    );
                }
            }
        }
    }

    /// What each route writes, imports and leaves for `etl verify`.
    #[test]
    fn a_route_writes_then_imports() {
        let m = || "http://m:19530".to_string();
        let staged = Route::StageThenImport {
            stage: "s3://b/p".into(),
            into: Destination::Milvus(m()),
        };
        let stage = |import_follows| Destination::Stage {
            url: "s3://b/p".into(),
            for_milvus: Some(m()),
            import_follows,
        };
        assert_eq!(staged.writes(), stage(true));
        assert_eq!(
            staged.import_after(),
            Some(("s3://b/p", &Destination::Milvus(m())))
        );
        assert_eq!(staged.holds(), Destination::Milvus(m()));
        let only = Route::Stage {
            url: "s3://b/p".into(),
            for_milvus: Some(m()),
        };
        assert_eq!((only.writes(), only.import_after()), (stage(false), None));
        assert_eq!(only.holds(), stage(false));
        let direct = Route::Direct(Destination::Engine(PathBuf::from("d")));
        assert_eq!(direct.holds(), direct.writes());
        assert_eq!(direct.import_after(), None);
    }

    #[test]
    fn a_command_line_target_is_parsed_once() {
        use std::path::Path;
        for (text, milvus) in [
            ("milvus://h:19530", true),
            ("http://h:19530", true),
            ("https://h", true),
            ("./data", false),
            ("/abs/milvus", false),
        ] {
            let t = TargetUrl::parse(Path::new(text));
            assert_eq!(matches!(t, TargetUrl::Milvus(_)), milvus, "{text}");
        }
    }
}
