//! The sweep plan (TOML) and its runs: `[base]` holds settings as a `--config` file does (its
//! sections as `[base.supernet]`, `[base.space_params]`, ...), `[grid]` a list of values per
//! setting, keyed by the setting's dotted path (`"shrink.metric" = ["none", "angle"]`), and `[run]`
//! how each run is run (threads, device, latency measurement). The runs are the product of the
//! grid, the first key varying slowest; each gets a stable name from its grid values
//! (`sampler=uniform,shrink.metric=angle,seed=0`), which is also its directory.
//!
//! Why grid values are set on serialized settings: a grid key is a path into [`Settings`] as a
//! config file spells it. Setting each path on the JSON form of the base settings and
//! deserializing back makes every setting sweepable, those added later included, without code per
//! field: serde's `deny_unknown_fields` refuses a path that is not a setting and a value of the
//! wrong type, and the error names the grid key. Every run is expanded and checked (its settings,
//! space and data spec) before anything runs.
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use indexmap::IndexMap;
use pwsnas_models::SpaceKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::settings::Settings;

/// How every run of a sweep is run (the `[run]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunOptions {
    /// libtorch and ONNX Runtime threads of each run: its training and its measured latency use
    /// them, so that runs are comparable and reproducible wherever they run.
    pub threads: usize,
    /// `auto`, `cpu`, `cuda` or `cuda:N`, on the machine that runs the run.
    pub device: String,
    /// Timed ONNX Runtime and libtorch runs per latency measurement of `pwsnas export`.
    pub latency_runs: usize,
    /// Untimed warm-up runs before each of them.
    pub latency_warmup: usize,
    /// Fresh ONNX Runtime sessions per latency (`pwsnas export --latency-sessions`).
    pub latency_sessions: u16,
    /// Milliseconds each of them times at least (`pwsnas export --latency-session-ms`).
    pub latency_session_ms: f64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            threads: 1,
            device: "auto".into(),
            latency_runs: 100,
            latency_warmup: 10,
            latency_sessions: 10,
            latency_session_ms: 500.0,
        }
    }
}

/// One run of the sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    /// Position in the product: the Slurm array task ID and Kubernetes completion index.
    pub index: usize,
    /// Its directory name under `runs/`, from its grid values.
    pub name: String,
    /// Its grid values, by grid key, in plan order.
    pub values: IndexMap<String, Value>,
    pub settings: Settings,
}

impl PlannedRun {
    /// The grid values as a short label (`uniform/angle/0`), for charts.
    pub fn label(&self) -> String {
        self.values.values().map(value_text).collect::<Vec<_>>().join("/")
    }
}

/// An expanded plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The grid keys, in plan order.
    pub keys: Vec<String>,
    pub run: RunOptions,
    pub runs: Vec<PlannedRun>,
}

/// The file as typed (errors name the line and the field).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    #[serde(default)]
    base: Settings,
    #[serde(default)]
    grid: toml::Table,
    #[serde(default)]
    run: RunOptions,
}

/// The grid key of the seed: groups of a sweep report are its runs that differ only in it.
pub const SEED_KEY: &str = "seed";

/// Longest run name (a directory name, also in Slurm log names).
const MAX_NAME: usize = 200;

impl Plan {
    /// Reads and expands a plan file.
    pub fn load(path: &Path) -> Result<Plan> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read sweep plan {}", path.display()))?;
        Plan::parse(&text).with_context(|| format!("sweep plan {}", path.display()))
    }

    /// Expands a plan, checking every run before anything runs.
    pub fn parse(text: &str) -> Result<Plan> {
        let raw: toml::Table = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let file: PlanFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let mut grid = Vec::new();
        flatten_grid("", &file.grid, &mut grid)?;
        if grid.is_empty() {
            bail!("the [grid] is empty: list at least one setting's values, e.g. seed = [0, 1, 2]");
        }
        let mut base_keys = Vec::new();
        if let Some(toml::Value::Table(base)) = raw.get("base") {
            leaf_paths("", base, &mut base_keys);
        }
        for (key, values) in &grid {
            if let Some(b) = base_keys.iter().find(|b| overlaps(b, key)) {
                bail!("[grid] {key} is also set in [base] ({b}): set it in one place");
            }
            if values.is_empty() {
                bail!("[grid] {key} has no values: list at least one");
            }
            for (i, v) in values.iter().enumerate() {
                if values[..i].contains(v) {
                    bail!("[grid] {key} lists {v} twice: each value gives one run");
                }
            }
        }
        let base = serde_json::to_value(&file.base)?;
        // Each value alone first, so that an error names the key and the value at fault.
        for (key, values) in &grid {
            for v in values {
                with_values(&base, &[(key.as_str(), v)])?;
            }
        }
        check_options(&file.run)?;
        let keys: Vec<String> = grid.iter().map(|(k, _)| k.clone()).collect();
        let total: usize = grid.iter().map(|(_, v)| v.len()).product();
        let mut runs: Vec<PlannedRun> = Vec::with_capacity(total);
        for index in 0..total {
            let mut rest = index;
            let mut picks = vec![0; grid.len()];
            for (k, (_, values)) in grid.iter().enumerate().rev() {
                picks[k] = rest % values.len();
                rest /= values.len();
            }
            let values: IndexMap<String, Value> =
                grid.iter().zip(&picks).map(|((k, vs), &p)| (k.clone(), vs[p].clone())).collect();
            let pairs: Vec<(&str, &Value)> = values.iter().map(|(k, v)| (k.as_str(), v)).collect();
            let settings = with_values(&base, &pairs)?;
            let name = run_name(&values);
            if let Some(other) = runs.iter().find(|r| r.name == name) {
                bail!(
                    "runs {} and {} would share the directory name {name}: make their grid values differ in letters, digits or . _ + -",
                    other.index,
                    index
                );
            }
            runs.push(PlannedRun { index, name, values, settings });
        }
        for r in &runs {
            check_run(&r.name, &r.settings)?;
        }
        Ok(Plan { keys, run: file.run, runs })
    }

    /// The run at a task index (from `--index`, `SLURM_ARRAY_TASK_ID` or `JOB_COMPLETION_INDEX`).
    pub fn run_at(&self, index: usize) -> Result<&PlannedRun> {
        self.runs.get(index).ok_or_else(|| {
            anyhow!(
                "task index {index} is past the plan's {} runs (indices 0-{}): was the job submitted for another sweep?",
                self.runs.len(),
                self.runs.len().saturating_sub(1)
            )
        })
    }
}

/// A TOML error as one line: where, and what.
fn toml_error(text: &str, e: &toml::de::Error) -> anyhow::Error {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            anyhow!("line {line}, column {column}: {message}")
        }
        None => anyhow!("{message}"),
    }
}

/// The grid's keys and value lists, nested tables (`[grid.shrink]`, `shrink.metric = [...]`)
/// flattened to dotted paths.
fn flatten_grid(prefix: &str, table: &toml::Table, out: &mut Vec<(String, Vec<Value>)>) -> Result<()> {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => flatten_grid(&key, t, out)?,
            toml::Value::Array(items) => {
                if out.iter().any(|(other, _)| *other == key) {
                    bail!("[grid] {key} is given twice (once quoted, once as a table?): give it once");
                }
                let values = items.iter().map(serde_json::to_value).collect::<Result<Vec<_>, _>>()?;
                out.push((key, values));
            }
            other => bail!("[grid] {key} = {other}: expected a list of values, e.g. {key} = [{other}]"),
        }
    }
    Ok(())
}

/// The dotted paths of the values set in a table.
fn leaf_paths(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(t) => leaf_paths(&key, t, out),
            _ => out.push(key),
        }
    }
}

/// Whether two dotted paths name the same setting or one lies inside the other.
fn overlaps(a: &str, b: &str) -> bool {
    let inside = |x: &str, y: &str| x.strip_prefix(y).is_some_and(|rest| rest.starts_with('.'));
    a == b || inside(a, b) || inside(b, a)
}

/// `base` with each `(dotted key, value)` set, as settings.
fn with_values(base: &Value, values: &[(&str, &Value)]) -> Result<Settings> {
    let mut v = base.clone();
    for (key, value) in values {
        set_path(&mut v, key, (*value).clone())?;
    }
    let mut settings: Settings = serde_json::from_value(v).map_err(|e| {
        let shown: Vec<String> = values.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        anyhow!("[grid] {}: {e}", shown.join(", "))
    })?;
    if values.iter().any(|(k, _)| *k == "search.method") && !values.iter().any(|(k, _)| *k == "sampler") {
        settings.sampler_follows_method();
    }
    Ok(settings)
}

/// Sets a dotted path in a JSON object; every section on the way must exist.
fn set_path(root: &mut Value, key: &str, value: Value) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("[grid] '{key}' is not a setting path: expected names joined by dots, e.g. shrink.metric");
    }
    let mut node = root;
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = node else {
            bail!("[grid] {key}: {} is a setting, not a section of settings", parts[..i].join("."));
        };
        if i + 1 == parts.len() {
            map.insert(part.to_string(), value);
            return Ok(());
        }
        node = map
            .get_mut(*part)
            .ok_or_else(|| anyhow!("[grid] {key}: there is no setting section {}", parts[..=i].join(".")))?;
    }
    unreachable!("a split string has at least one part")
}

/// A value as it appears in a run name or label: strings bare, others as compact JSON.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `key=value,key=value`, with characters other than letters, digits and `. _ + -` in values
/// replaced by `_` (names are directories and Slurm log names).
fn run_name(values: &IndexMap<String, Value>) -> String {
    let clean = |s: String| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "._+-".contains(c) { c } else { '_' }).collect()
    };
    values.iter().map(|(k, v)| format!("{k}={}", clean(value_text(v)))).collect::<Vec<_>>().join(",")
}

/// What a run's settings need beyond types: valid values, a space that builds, a data spec that parses.
fn check_run(name: &str, s: &Settings) -> Result<()> {
    if name.len() > MAX_NAME {
        bail!("run name {name} is longer than {MAX_NAME} characters: sweep fewer keys or shorter values");
    }
    let context = || format!("run {name}");
    s.validate().with_context(context)?;
    if s.space_file.is_none() {
        SpaceKind::from_params(&s.space, Value::Object(s.space_params.clone()))
            .with_context(|| format!("run {name}: space '{}' with space_params", s.space))?;
    }
    s.data.parse::<pwsnas_datasets::DataSpec>().with_context(|| format!("run {name}: data '{}'", s.data))?;
    Ok(())
}

fn check_options(o: &RunOptions) -> Result<()> {
    if o.threads == 0 {
        bail!("[run] threads must be at least 1");
    }
    if o.latency_sessions == 0 {
        bail!("[run] latency_sessions must be at least 1");
    }
    if !(o.latency_session_ms.is_finite() && o.latency_session_ms >= 0.0) {
        bail!("[run] latency_session_ms = {}: expected milliseconds ≥ 0", o.latency_session_ms);
    }
    if o.latency_runs == 0 {
        bail!("[run] latency_runs must be at least 1");
    }
    crate::device::check_name(&o.device).context("[run] device")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Metric, Sampler};

    #[test]
    fn the_example_plans_expand_with_their_runs_named() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        for (file, runs) in [("sweep.toml", 12), ("constraints.toml", 6), ("ablation-copies.toml", 6)] {
            let plan = Plan::load(&dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e:#}"));
            assert_eq!(plan.runs.len(), runs, "{file}");
            assert!(plan.runs.iter().all(|r| r.name.contains("seed=")), "{file}");
        }
    }

    const PLAN: &str = r#"
[base]
data = "synthetic"
[base.supernet]
epochs = 2
[base.space_params]
channels = 4

[grid]
sampler = ["uniform", "fair"]
"shrink.metric" = ["none", "angle"]
seed = [0, 1, 2]

[run]
latency_runs = 5
"#;

    #[test]
    fn the_grid_is_a_product_in_plan_order_with_stable_names() {
        let plan = Plan::parse(PLAN).unwrap();
        assert_eq!(plan.keys, ["sampler", "shrink.metric", "seed"]);
        assert_eq!(plan.runs.len(), 12);
        assert_eq!(plan.run.latency_runs, 5);
        assert_eq!(plan.run.threads, 1);
        let r = &plan.runs[5];
        assert_eq!(r.index, 5);
        assert_eq!(r.name, "sampler=uniform,shrink.metric=angle,seed=2");
        assert_eq!(r.label(), "uniform/angle/2");
        assert_eq!(r.settings.sampler, Sampler::Uniform);
        assert_eq!(r.settings.shrink.metric, Metric::Angle);
        assert_eq!(r.settings.seed, 2);
        assert_eq!(r.settings.supernet.epochs, 2, "base settings kept");
        assert_eq!(r.settings.space_params["channels"], 4);
        assert_eq!(plan.runs[11].name, "sampler=fair,shrink.metric=angle,seed=2");
        assert_eq!(Plan::parse(PLAN).unwrap(), plan, "expansion is deterministic");
        assert!(plan.run_at(11).is_ok());
        let err = plan.run_at(12).unwrap_err().to_string();
        assert!(err.contains("task index 12 is past the plan's 12 runs (indices 0-11)"), "{err}");
    }

    #[test]
    fn the_nb201_search_table_plan_expands_to_every_method_with_and_without_shrinking() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nb201/search.toml");
        // search-table.sh fills in the data and the table.
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace("\"DATA\"", "\"synthetic\"")
            .replace("\"TABLE\"", "\"nb201.csv#cifar10-test@12\"");
        let plan = Plan::parse(&text).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(plan.runs.len(), 24);
        for r in &plan.runs {
            assert_eq!(r.settings.retrain.epochs, 0, "{}", r.name);
            assert_eq!(r.settings.benchmark.as_deref(), Some("nb201.csv#cifar10-test@12"));
            let fair = r.settings.search.method == crate::method::Method::Fairnas;
            assert_eq!(r.settings.sampler == Sampler::Fair, fair, "{}", r.name);
        }
    }

    #[test]
    fn a_grid_over_the_method_trains_fairnas_with_its_own_sampler() {
        // The paper's comparison: SPOS and FairNAS in one grid, no sampler named anywhere.
        let plan = Plan::parse(
            "[base]\ndata = \"synthetic\"\n[grid]\n\"search.method\" = [\"spos\", \"fairnas\"]\nseed = [0]\n",
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        let samplers: Vec<Sampler> = plan.runs.iter().map(|r| r.settings.sampler).collect();
        assert_eq!(samplers, [Sampler::Uniform, Sampler::Fair]);
        // A grid that names the sampler too is taken as written (and refused where it contradicts).
        let err = Plan::parse(
            "[base]\ndata = \"synthetic\"\n[grid]\n\"search.method\" = [\"fairnas\"]\nsampler = [\"uniform\"]\n",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("trains its supernet with sampler = fair"), "{err:#}");
    }

    #[test]
    fn nested_grid_tables_and_free_maps_are_settings_too() {
        let plan = Plan::parse(
            "[grid.shrink]\nmetric = [\"none\"]\n[grid]\n\"space_params.cells_per_stage\" = [1, 2]\n\"search.max_flops\" = [1e6]\n\"search.latency_threads\" = [1]\n",
        )
        .unwrap();
        assert_eq!(
            plan.keys,
            ["shrink.metric", "space_params.cells_per_stage", "search.max_flops", "search.latency_threads"]
        );
        assert_eq!(plan.runs[1].settings.space_params["cells_per_stage"], 2);
        assert_eq!(plan.runs[1].settings.search.max_flops, Some(1e6));
        assert_eq!(
            plan.runs[1].settings.search.latency_threads,
            Some(1),
            "a field left out of serialized defaults"
        );
        assert_eq!(plan.runs[1].name, "shrink.metric=none,space_params.cells_per_stage=2,search.max_flops=1000000.0,search.latency_threads=1");
    }

    fn err(text: &str) -> String {
        format!("{:#}", Plan::parse(text).unwrap_err())
    }

    #[test]
    fn bad_plans_name_the_key_and_the_fault() {
        assert!(err("[base]\nseed = 1\n").contains("[grid] is empty"));
        assert!(err("[grid]\n").contains("[grid] is empty"));
        assert!(err("[grid]\nseed = []\n").contains("[grid] seed has no values"));
        assert!(err("[grid]\nseed = [0, 0]\n").contains("[grid] seed lists 0 twice"));
        let e = err("[grid]\nseed = [0]\nseed = [1]\n");
        assert!(e.contains("line 3") && e.contains("duplicate key"), "{e}");
        let e = err("[grid]\n\"shrink.metric\" = [\"none\"]\nshrink.metric = [\"angle\"]\n");
        assert!(e.contains("shrink.metric"), "{e}");
        let e = err("[grid.shrink]\nmetric = [\"none\"]\n[grid]\n\"shrink.metric\" = [\"angle\"]\n");
        assert!(e.contains("[grid] shrink.metric is given twice"), "{e}");
        let e = err("[grid]\n\"shrink.metrc\" = [\"angle\"]\n");
        assert!(e.contains("[grid] shrink.metrc = \"angle\"") && e.contains("unknown field `metrc`"), "{e}");
        let e = err("[grid]\n\"shrnk.metric\" = [\"angle\"]\n");
        assert!(e.contains("there is no setting section shrnk"), "{e}");
        let e = err("[grid]\n\"seed.x\" = [1]\n");
        assert!(e.contains("seed is a setting, not a section"), "{e}");
        let e = err("[grid]\nseed = [\"one\"]\n");
        assert!(e.contains("[grid] seed = \"one\"") && e.contains("invalid type: string"), "{e}");
        let e = err("[grid]\nsampler = [\"uniform\", \"greedy\"]\n");
        assert!(e.contains("sampler = \"greedy\"") && e.contains("unknown variant `greedy`"), "{e}");
        let e = err("[grid]\nseed = 3\n");
        assert!(e.contains("[grid] seed = 3: expected a list of values, e.g. seed = [3]"), "{e}");
        let e = err("[base]\nseed = 1\n[grid]\nseed = [0]\n");
        assert!(e.contains("[grid] seed is also set in [base] (seed)"), "{e}");
        let e = err("[base.shrink]\nmetric = \"angle\"\n[grid]\nshrink = [{ metric = \"none\" }]\n");
        assert!(e.contains("also set in [base] (shrink.metric)"), "{e}");
        let e = err("[base]\nsede = 1\n[grid]\nseed = [0]\n");
        assert!(e.contains("line 2") && e.contains("unknown field `sede`"), "{e}");
        let e = err("[grid]\nseed = [0]\n[sweep]\n");
        assert!(e.contains("unknown field `sweep`"), "{e}");
        let e = err("[grid]\n\"supernet.batch_size\" = [0]\n");
        assert!(
            e.contains("run supernet.batch_size=0") && e.contains("supernet.batch_size must be at least 1"),
            "{e}"
        );
        let e = err("[grid]\n\"space_params.chanels\" = [4]\n");
        assert!(e.contains("run space_params.chanels=4") && e.contains("chanels"), "{e}");
        let e = err("[grid]\ndata = [\"imagenet\"]\n");
        assert!(e.contains("run data=imagenet: data 'imagenet'"), "{e}");
        let e = err("[grid]\nseed = [0]\n[run]\ndevice = \"gpu\"\n");
        assert!(e.contains("[run] device") && e.contains("unknown device 'gpu'"), "{e}");
        let e = err("[grid]\nspace = [\"a b\", \"a/b\"]\n");
        assert!(e.contains("share the directory name space=a_b"), "{e}");
    }

    #[test]
    fn paths_overlap_only_on_whole_names() {
        assert!(overlaps("shrink", "shrink.metric") && overlaps("shrink.metric", "shrink"));
        assert!(overlaps("seed", "seed"));
        assert!(!overlaps("search", "search_x") && !overlaps("shrink.metric", "shrink.metrics"));
    }
}
