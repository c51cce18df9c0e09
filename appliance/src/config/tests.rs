//! Config tests: parsing, precedence, validation errors, and that
//! `weir.example.toml` documents every key the config accepts.

use std::path::Path;
use std::time::Duration;

use super::load::parse;
use super::policy::Preset;
use super::*;
use crate::filer_url::CoreFilerUrl;
use crate::units::ByteSize;

const EXAMPLE: &str = include_str!("../../../weir.example.toml");

fn flags() -> ServeFlags {
    ServeFlags::default()
}

#[test]
fn junctions_join_named_core_filers_with_their_own_policies() {
    let s = parse(
        r#"
[policy]
attr_verify = "10s"
[core_filers.nas2]
url = "file:///srv/nas2"
[[junctions]]
path = "/projects/"
core_filer = "nas2"
subdir = "/vol/shots/"
policy = "clients-bypassing"
negative_lookups = true
[[junctions]]
path = "/lib"
core_filer = "nas2"
"#,
    )
    .unwrap()
    .validate()
    .unwrap();
    assert_eq!(s.mounts.len(), 2);
    assert_eq!(s.mounts[0].subdir, "/vol/shots");
    assert_eq!(s.mounts[0].policy.attr_verify, Duration::from_secs(3));
    assert!(s.mounts[0].policy.negative_lookups);
    assert_eq!(s.mounts[1].subdir, "/");
    assert_eq!(
        s.mounts[1].policy.attr_verify,
        Duration::from_secs(10),
        "the root's policy"
    );
    assert_eq!(s.junctions[0].path, "/projects");
    assert_eq!(s.junctions[1].mount, 2);
    assert!(s.summary().contains("+ 2 junctions"), "{}", s.summary());
}

#[test]
fn broken_junctions_are_refused_with_the_reason() {
    let filer = "[core_filers.n]\nurl = \"file:///x\"\n";
    let cases = [
        ("[[junctions]]\npath = \"/a\"\ncore_filer = \"n\"", "no [core_filers.n]"),
        ("[[junctions]]\npath = \"a\"\ncore_filer = \"n\"", "not an absolute path"),
        ("[[junctions]]\npath = \"/\"\ncore_filer = \"n\"", "below it"),
        ("[[junctions]]\npath = \"/a/../b\"\ncore_filer = \"n\"", "plain names"),
        ("[[junctions]]\npath = \"/a\"\ncore_filer = \"n\"\nsubdir = \"x\"", "subdir"),
        ("[[junctions]]\npath = \"/a\"\ncore_filer = \"n\"\n[[junctions]]\npath = \"/a/\"\ncore_filer = \"n\"", "same path"),
        ("[[junctions]]\npath = \"/a\"\ncore_filer = \"n\"\nwriteback_delay = \"5s\"", "only the \"read-write\" preset"),
        ("[[junctions]]\npath = \"/a\"\ncore_filer = \"n\"\nspeed = 1", "unknown field"),
        ("[[junctions]]\npath = \"/a\"", "core_filer"),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let text = if i == 0 {
            text.to_string()
        } else {
            format!("{filer}{text}")
        };
        let err = match parse(&text) {
            Ok(c) => c.validate().map(|_| ()).unwrap_err().to_string(),
            Err(e) => e,
        };
        assert!(err.contains(want), "{text}: {err:?} lacks {want:?}");
    }
    let err = parse("[core_filers.n]\nurl = \"s3://b/p\"")
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("core_filers.n.url"), "{err}");
}

#[test]
fn embedded_default_serves_a_local_origin_under_weir_data() {
    let s = Config::default().validate().unwrap();
    assert_eq!(s.data_dir, Path::new("./weir-data"));
    assert_eq!(s.core_filer, CoreFilerUrl::Local("./weir-data/origin".into()));
    assert!(s.origin_is_default);
    assert_eq!(s.engine.cache_dir, Path::new("./weir-data/cache"));
    assert_eq!(s.engine.state_dir, Path::new("./weir-data"));
    assert_eq!(s.engine.ram_bytes, 512 << 20);
    assert_eq!(s.engine.cache_bytes, 2 << 30);
    assert_eq!(s.preset, Preset::ReadOnly);
    assert_eq!(s.metrics_listen.to_string(), "127.0.0.1:9108");
}

#[test]
fn limits_reach_both_front_ends_and_unknown_ones_are_refused() {
    let s = parse(
        "[limits]\nmax_connections = 10\nmax_connections_per_client = 3\nsmb_lockout_after = 0\n\
         nfs_idle_timeout = \"90s\"\nsmb_logon_timeout = \"5s\"\nreceive_buffer_memory = \"64MiB\"",
    )
    .unwrap()
    .validate()
    .unwrap();
    for l in [s.nfs.limits, s.smb.limits] {
        assert_eq!((l.max_connections, l.max_per_client), (10, 3));
    }
    assert_eq!(s.nfs.idle_timeout, Duration::from_secs(90));
    assert_eq!(s.smb.logon_timeout, Duration::from_secs(5));
    assert_eq!(s.smb.logons.lockout_after, 0);
    assert_eq!(s.smb.logons.per_client, 32, "default");
    assert_eq!(s.receive_budget.0, 64 << 20);
    assert!(parse("[limits]\nmax_conections = 10").is_err());
    let zero = parse("[limits]\nmax_connections_per_client = 0").unwrap();
    assert!(zero.validate().is_err());
}

#[test]
fn flags_beat_the_file_which_beats_the_defaults() {
    let mut cfg = parse("[cache]\nmemory = \"1GiB\"\nsize = \"8GiB\"\n[server]\ndata_dir = \"/d\"").unwrap();
    let f = ServeFlags {
        memory: Some(ByteSize::gib(2)),
        ..flags()
    };
    cfg.apply(&f).unwrap();
    let s = cfg.validate().unwrap();
    assert_eq!(s.engine.ram_bytes, 2 << 30, "flag wins");
    assert_eq!(s.engine.cache_bytes, 8 << 30, "file wins over default");
    assert_eq!(s.engine.readahead_max, 8 << 20, "default");
    assert_eq!(
        s.engine.cache_dir,
        Path::new("/d/cache"),
        "derived from the file's data_dir"
    );
}

#[test]
fn data_dir_moves_derived_paths_but_not_explicit_ones() {
    let mut cfg = parse("[cache]\ndir = \"/fast/cache\"").unwrap();
    cfg.apply(&ServeFlags {
        data_dir: Some("/var/lib/weir".into()),
        ..flags()
    })
    .unwrap();
    let s = cfg.validate().unwrap();
    assert_eq!(s.engine.cache_dir, Path::new("/fast/cache"));
    assert_eq!(s.core_filer, CoreFilerUrl::Local("/var/lib/weir/origin".into()));
    assert_eq!(s.engine.state_dir, Path::new("/var/lib/weir"));
}

#[test]
fn origin_flag_is_a_local_core_filer() {
    let mut cfg = parse("[core_filer]\nurl = \"file:///elsewhere\"").unwrap();
    cfg.apply(&ServeFlags {
        origin: Some("/srv/data".into()),
        ..flags()
    })
    .unwrap();
    let s = cfg.validate().unwrap();
    assert_eq!(s.core_filer, CoreFilerUrl::Local("/srv/data".into()));
    assert!(!s.origin_is_default);
}

#[test]
fn future_core_filer_kinds_are_checked_then_refused() {
    let s = parse("[core_filer]\nurl = \"nfs://nas:2049/export?mountport=20048\"")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(s.core_filer.kind(), "nfs");
    for url in ["s3://bucket/prefix", "gcs://bucket/prefix"] {
        let cfg = parse(&format!("[core_filer]\nurl = \"{url}\"")).unwrap();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("not available in this build yet"), "{url}: {err}");
    }
    let cfg = parse("[core_filer]\nurl = \"nfs://nas\"").unwrap();
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("invalid core filer URL"), "{err}");
}

#[test]
fn presets_and_their_overrides() {
    let s = parse("[policy]\npreset = \"clients-bypassing\"")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(s.engine.policy.attr_verify, Duration::from_secs(3));
    assert!(!s.engine.policy.negative_lookups);
    let s = parse("[policy]\npreset = \"clients-bypassing\"\nattr_verify = \"1m\"\nnegative_lookups = true")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(s.engine.policy.attr_verify, Duration::from_secs(60));
    assert_eq!(s.engine.policy.dir_verify, Duration::from_secs(3));
    assert!(s.engine.policy.negative_lookups);
    let s = parse("[policy]\npreset = \"read-write\"")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(s.engine.policy.writeback_delay, Some(Duration::from_secs(30)));
    assert!(s.engine.journal_bytes > 0);
    let s = parse("[policy]\npreset = \"read-write\"\nwriteback_delay = \"5s\"")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(s.engine.policy.writeback_delay, Some(Duration::from_secs(5)));
    let err = parse("[policy]\npreset = \"read-write\"\n[cache]\njournal_size = \"0\"")
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("journal_size = 0"), "{err}");
    let err = parse("[policy]\nwriteback_delay = \"5s\"")
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(
        err.to_string().contains("only the \"read-write\" preset"),
        "{err}"
    );
    let err = parse("[policy]\npreset = \"write-around\"").unwrap_err();
    assert!(err.contains("unknown variant `write-around`"), "{err}");
}

#[test]
fn errors_point_at_the_line() {
    let err = parse("[cache]\nsize = \"2GiB\"\nsise = \"2GiB\"\n").unwrap_err();
    assert!(err.starts_with("line 3"), "{err}");
    assert!(err.contains("unknown field `sise`"), "{err}");
    assert!(!err.contains('\n'), "{err}");
    let err = parse("[cache]\nmemory = \"lots\"\n").unwrap_err();
    assert!(
        err.starts_with("line 2") && err.contains("invalid size `lots`"),
        "{err}"
    );
    let err = parse("[policy]\nattr_verify = \"30\"\n").unwrap_err();
    assert!(
        err.starts_with("line 2") && err.contains("invalid duration"),
        "{err}"
    );
    let err = parse("[server]\nnfs_listen = \"nowhere\"\n").unwrap_err();
    assert!(err.starts_with("line 2"), "{err}");
    let err = parse("[server\n").unwrap_err();
    assert!(err.starts_with("line 1") && !err.contains('\n'), "{err}");
    let err = parse("[nfs]\nport = 1\n").unwrap_err();
    assert!(err.contains("unknown field `port`"), "{err}");
}

#[test]
fn bad_cache_geometry_is_refused() {
    for (toml, what) in [
        ("block_size = 3000", "cache.block_size"),
        ("block_size = \"1KiB\"", "cache.block_size"),
        ("segment_size = \"100KiB\"", "cache.segment_size"),
        ("readahead_max = 100", "cache.readahead_max"),
        ("memory = 1024", "cache.memory"),
        ("size = \"4MiB\"", "cache.size"),
        ("shards = 5000", "cache.shards"),
    ] {
        let err = parse(&format!("[cache]\n{toml}"))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().starts_with(what), "{toml}: {err}");
    }
    let s = parse("[cache]\nsize = 0\nreadahead_max = 0")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!((s.engine.cache_bytes, s.engine.readahead_max), (0, 0));
    let err = parse("[server]\nlog = \"info,=[\"")
        .unwrap()
        .validate()
        .unwrap_err();
    assert!(err.to_string().starts_with("server.log"), "{err}");
}

#[test]
fn example_config_parses_validates_and_round_trips() {
    let cfg = parse(EXAMPLE).unwrap_or_else(|e| panic!("weir.example.toml: {e}"));
    cfg.validate().unwrap();
    let again = parse(&toml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(cfg, again);
    assert_eq!(
        again.validate().unwrap().summary(),
        cfg.validate().unwrap().summary()
    );
}

#[test]
fn default_config_round_trips_through_toml() {
    let text = toml::to_string(&Config::default()).unwrap();
    assert_eq!(parse(&text).unwrap(), Config::default());
}

/// The field names a derived `Deserialize` struct accepts, read from the
/// derive itself, so a key added to the structs cannot hide from the docs.
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::Visitor;
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("stop")
        }
    }
    impl std::error::Error for Stop {}
    impl serde::de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    struct Grab<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Grab<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Grab(&mut fields));
    assert!(!fields.is_empty(), "not a struct");
    fields
}

/// Section name -> that section's lines in the example file.
fn example_sections() -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    let mut current = String::new();
    for line in EXAMPLE.lines() {
        let t = line.trim();
        // Arrays of tables are documented commented out: `# [[exports]]`.
        let header = t
            .strip_prefix("# [[")
            .map(|r| format!("[[{r}"))
            .or_else(|| {
                t.strip_prefix("# [core_filers.")
                    .map(|_| "[core_filers]".to_string())
            })
            .unwrap_or(t.to_string());
        let t = header.as_str();
        if let Some(name) = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            let name = name.trim_start_matches('[').trim_end_matches(']');
            current = name.to_string();
            out.entry(current.clone()).or_insert_with(Vec::new);
        } else {
            out.entry(current.clone())
                .or_insert_with(Vec::new)
                .push(t.to_string());
        }
    }
    out
}

/// The key a line sets, commented out (`# key = ...`) or not.
fn key_of(line: &str) -> Option<&str> {
    let t = line.trim_start_matches('#').trim_start();
    let (key, _) = t.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')).then_some(key)
}

#[test]
fn example_config_documents_every_key_and_only_real_keys() {
    let sections = example_sections();
    let sections_and_rules = fields_of::<Config>().iter().copied().chain(["exports.rules"]);
    for section in sections_and_rules {
        let fields = match section {
            "exports.rules" => fields_of::<nfs_front::RuleConfig>(),
            "server" => fields_of::<Server>(),
            "cache" => fields_of::<Cache>(),
            "core_filer" => fields_of::<CoreFiler>(),
            "policy" => fields_of::<Policy>(),
            "nfs" => fields_of::<Nfs>(),
            "exports" => fields_of::<nfs_front::ExportConfig>(),
            "core_filers" => fields_of::<NamedFiler>(),
            "junctions" => fields_of::<Junction>(),
            "smb" => fields_of::<Smb>(),
            "shares" => fields_of::<smb_front::config::ShareConfig>(),
            "limits" => fields_of::<Limits>(),
            other => panic!("section [{other}] is new: teach this test its struct"),
        };
        let lines = sections
            .get(section)
            .unwrap_or_else(|| panic!("weir.example.toml has no [{section}] section"));
        let mut documented: Vec<&str> = lines.iter().filter_map(|l| key_of(l)).collect();
        if section == "exports" && sections.contains_key("exports.rules") {
            documented.push("rules");
        }
        for key in fields {
            assert!(
                documented.contains(key),
                "weir.example.toml does not document {section}.{key}"
            );
        }
        for key in documented {
            assert!(
                fields.contains(&key),
                "weir.example.toml documents {section}.{key}, which does not exist"
            );
        }
    }
    for name in sections.keys().filter(|s| !s.is_empty()) {
        assert!(
            fields_of::<Config>().contains(&name.as_str()) || name == "exports.rules",
            "unknown section [{name}] in the example"
        );
    }
}
