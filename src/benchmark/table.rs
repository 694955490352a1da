//! Reading a benchmark table: one CSV row per cell of the nb201 space, a column `arch` with the
//! cell's NAS-Bench-201 string and one column per measurement, named by data set, split and
//! schedule (`cifar10-test@12`: top-1 in % on CIFAR-10's test set after the 12-epoch schedule).
//!
//! Why the checks are strict: a table stands in for hours of training per cell, and a wrong one
//! (another column, a cell missing, a duplicated row) would silently change every figure pwsnas
//! derives from it. So the table is read whole and refused, with the file, the line and the fix,
//! when a row's arch is not an nb201 cell, a value is not a number, a cell is listed twice or
//! missing, or the column asked for does not exist. A row may leave other columns empty (the
//! importer does where the official file has no such measurement); the chosen column must be full.
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pwsnas_models::{Nb201Params, Op, Space, SpaceKind};

/// A table file and the column that counts: `FILE` or `FILE#COLUMN` (`--benchmark`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableRef {
    pub path: PathBuf,
    /// `None`: the table's only measurement column.
    pub column: Option<String>,
}

impl std::str::FromStr for TableRef {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<TableRef> {
        let s = s.trim();
        if s.is_empty() {
            bail!("a benchmark table is FILE or FILE#COLUMN (e.g. nb201-cifar10-12e.csv#cifar10-test@12), not an empty string");
        }
        // A '#' followed by a path separator is part of the file name, not a column.
        match s.rsplit_once('#') {
            Some((file, column)) if !column.contains('/') => {
                if file.is_empty() || column.is_empty() {
                    bail!("benchmark table '{s}': expected FILE#COLUMN with both parts, e.g. nb201.csv#cifar10-test@12");
                }
                Ok(TableRef { path: PathBuf::from(file), column: Some(column.to_string()) })
            }
            _ => Ok(TableRef { path: PathBuf::from(s), column: None }),
        }
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "{}#{c}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// One column of a benchmark table over every cell of its space.
#[derive(Clone, Debug)]
pub struct Table {
    pub path: PathBuf,
    pub column: String,
    /// Nodes of the cells (4 for NAS-Bench-201's 6-edge cell).
    pub nodes: usize,
    /// The ops the cells use, in NAS-Bench-201's order.
    pub ops: Vec<Op>,
    /// Value by the cell's canonical arch string.
    values: HashMap<String, f64>,
    /// Every value, highest first (ranks).
    sorted: Vec<f64>,
    /// The best cell and its value.
    pub best: (String, f64),
    pub mean: f64,
}

/// A table file's rows, before a column is chosen.
struct Rows {
    header: Vec<String>,
    /// `(line, arch as written, fields)`.
    rows: Vec<(u64, String, Vec<String>)>,
}

fn read_rows(path: &Path) -> Result<Rows> {
    let file = std::fs::File::open(path).with_context(|| {
        format!(
            "cannot read the benchmark table {}: pass an existing CSV file (`pwsnas benchmark import` writes one from the official files)",
            path.display()
        )
    })?;
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(file);
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("benchmark table {}: the header line is not CSV", path.display()))?
        .iter()
        .map(str::to_string)
        .collect();
    let Some(arch_at) = header.iter().position(|h| h == "arch") else {
        bail!(
            "benchmark table {}: no column `arch` in the header (found: {}): the first line must name the columns, one of them `arch` holding each cell's NAS-Bench-201 string",
            path.display(),
            header.join(", ")
        );
    };
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            anyhow::anyhow!(
                "benchmark table {} line {line}: {}: every row needs one field per header column",
                path.display(),
                csv_reason(&e)
            )
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let fields: Vec<String> = record.iter().map(str::to_string).collect();
        rows.push((line, fields[arch_at].clone(), fields));
    }
    if rows.is_empty() {
        bail!(
            "benchmark table {} has a header but no rows: it must list every cell of the space",
            path.display()
        );
    }
    Ok(Rows { header, rows })
}

fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
            format!("{len} fields where the header has {expected_len}")
        }
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".into(),
        _ => e.to_string(),
    }
}

/// The kind of nb201 cells with `nodes` nodes over every NAS-Bench-201 op.
fn cell_kind(nodes: usize) -> Result<SpaceKind> {
    let params = Nb201Params { nodes, ..Nb201Params::default() };
    let kind = SpaceKind::new(params);
    kind.validate()?;
    Ok(kind)
}

impl Table {
    /// Reads the column `r.column` (or the table's only measurement column) of the table at
    /// `r.path`, checking every row (see the module docs).
    pub fn read(r: &TableRef) -> Result<Table> {
        let path = &r.path;
        let Rows { header, rows } = read_rows(path)?;
        let measurements: Vec<&String> = header.iter().filter(|h| *h != "arch" && *h != "index").collect();
        let column = match &r.column {
            Some(c) => c.clone(),
            None if measurements.len() == 1 => measurements[0].clone(),
            None => bail!(
                "benchmark table {} has {} measurement columns ({}): name the one that counts as {}#COLUMN",
                path.display(),
                measurements.len(),
                measurements.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                path.display()
            ),
        };
        let Some(at) = header.iter().position(|h| *h == column) else {
            bail!(
                "benchmark table {}: no column `{column}` (its columns: {}): name one of them after '#'",
                path.display(),
                measurements.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            );
        };
        // The node count comes from the first row; every row must agree.
        let first = &rows[0].1;
        let nodes = first.matches('+').count() + 2;
        let kind = cell_kind(nodes).with_context(|| {
            format!("benchmark table {} line {}: '{first}' is not an nb201 cell", path.display(), rows[0].0)
        })?;
        let mut values: HashMap<String, f64> = HashMap::with_capacity(rows.len());
        let mut lines: HashMap<String, u64> = HashMap::with_capacity(rows.len());
        let mut ops: BTreeSet<Op> = BTreeSet::new();
        for (line, arch, fields) in &rows {
            let parsed = kind.parse_arch(arch).map_err(|e| {
                anyhow::anyhow!(
                    "benchmark table {} line {line}: arch '{arch}' is not a {nodes}-node nb201 cell ({e}); every row must hold a cell in NAS-Bench-201's form |op~0|+|op~0|op~1|+|...|",
                    path.display()
                )
            })?;
            let key = kind.format_arch(&parsed);
            let text = &fields[at];
            if text.is_empty() {
                bail!(
                    "benchmark table {} line {line}: no value in column `{column}` for {key}: the column that counts must hold a value for every cell",
                    path.display()
                );
            }
            let value: f64 = text.parse().ok().filter(|v: &f64| v.is_finite()).with_context(|| {
                format!(
                    "benchmark table {} line {line}: column `{column}` holds '{text}', expected a finite number (top-1 in %)",
                    path.display()
                )
            })?;
            if let Some(before) = lines.insert(key.clone(), *line) {
                bail!(
                    "benchmark table {} lists {key} twice (lines {before} and {line}): keep one row per cell",
                    path.display()
                );
            }
            ops.extend(parsed.ops.iter().copied());
            values.insert(key, value);
        }
        let ops: Vec<Op> = Op::NB201.iter().copied().filter(|o| ops.contains(o)).collect();
        let space =
            Space::full(SpaceKind::new(Nb201Params { nodes, ops: ops.clone(), ..Nb201Params::default() }));
        if values.len() as u128 != space.size() {
            let missing = space
                .enumerate()
                .into_iter()
                .map(|a| space.format_arch(&a))
                .find(|a| !values.contains_key(a))
                .unwrap_or_default();
            bail!(
                "benchmark table {} has {} cells, but {nodes}-node cells over its ops ({}) number {}: {missing} is missing; the table must list every cell of its space",
                path.display(),
                values.len(),
                names(&ops),
                space.size()
            );
        }
        let mut sorted: Vec<f64> = values.values().copied().collect();
        sorted.sort_by(|a, b| b.total_cmp(a));
        let best = values
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(k, v)| (k.clone(), *v))
            .expect("a table has rows");
        let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
        Ok(Table { path: path.clone(), column, nodes, ops, values, sorted, best, mean })
    }

    /// Refuses a run whose space the table does not cover: not nb201, another node count, or an
    /// op the table's cells never use.
    pub fn check_covers(&self, kind: &SpaceKind) -> Result<()> {
        let Some(p) = kind.params::<Nb201Params>() else {
            bail!(
                "--benchmark {}: benchmark tables hold cells of the nb201 space, and this run's space is {}: drop --benchmark",
                self.path.display(),
                kind.name()
            );
        };
        if p.nodes != self.nodes {
            bail!(
                "--benchmark {}: the table holds {}-node cells, and this run's nb201 space has {} nodes: use a table of {}-node cells or --nodes {}",
                self.path.display(),
                self.nodes,
                p.nodes,
                p.nodes,
                self.nodes
            );
        }
        if let Some(op) = p.ops.iter().find(|o| !self.ops.contains(o)) {
            bail!(
                "--benchmark {}: the run's space has op {op}, which no cell of the table uses (its ops: {}): use a table of this op set",
                self.path.display(),
                names(&self.ops)
            );
        }
        Ok(())
    }

    /// The value of a cell (its canonical arch string), if the table has it.
    pub fn value(&self, arch: &str) -> Option<f64> {
        self.values.get(arch).copied()
    }

    /// Every cell and its value.
    pub fn cells(&self) -> impl Iterator<Item = (&String, f64)> {
        self.values.iter().map(|(k, v)| (k, *v))
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Where a value stands: 1 + the number of cells with a higher value (the best cell is 1).
    pub fn rank_of(&self, value: f64) -> usize {
        1 + self.sorted.partition_point(|&v| v > value)
    }
}

fn names(ops: &[Op]) -> String {
    ops.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A complete table of 3-node cells over `ops` (values from the cell's index), written to `dir`.
    pub(crate) fn write_table(
        dir: &Path,
        name: &str,
        ops: &[Op],
        edit: impl Fn(&mut Vec<String>),
    ) -> PathBuf {
        let space = Space::full(SpaceKind::new(Nb201Params {
            nodes: 3,
            ops: ops.to_vec(),
            ..Nb201Params::default()
        }));
        let mut lines = vec!["index,arch,cifar10-test@12,cifar10-test@200".to_string()];
        for (i, a) in space.enumerate().iter().enumerate() {
            lines.push(format!(
                "{i},{},{},{}",
                space.format_arch(a),
                50.0 + i as f64 * 0.25,
                90.0 - i as f64 * 0.1
            ));
        }
        edit(&mut lines);
        let path = dir.join(name);
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        path
    }

    fn read(path: &Path, column: Option<&str>) -> Result<Table> {
        Table::read(&TableRef { path: path.to_path_buf(), column: column.map(str::to_string) })
    }

    #[test]
    fn a_complete_table_reads_with_ranks_best_and_mean() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_table(dir.path(), "t.csv", &Op::NB201, |_| {});
        let t = read(&path, Some("cifar10-test@12")).unwrap();
        assert_eq!((t.len(), t.nodes, t.ops.len()), (125, 3, 5));
        let last = 50.0 + 124.0 * 0.25;
        assert_eq!(t.best.1, last);
        assert_eq!(t.rank_of(last), 1);
        assert_eq!(t.rank_of(50.0), 125);
        assert!((t.mean - (50.0 + 62.0 * 0.25)).abs() < 1e-9);
        let other = read(&path, Some("cifar10-test@200")).unwrap();
        assert_eq!(other.best.1, 90.0);
        assert_ne!(other.best.0, t.best.0);
    }

    #[test]
    fn table_refs_split_the_column_off_after_the_last_hash() {
        let r: TableRef = "runs/nb201.csv#cifar10-test@12".parse().unwrap();
        assert_eq!((r.path, r.column.as_deref()), (PathBuf::from("runs/nb201.csv"), Some("cifar10-test@12")));
        let r: TableRef = "data#1/nb201.csv".parse().unwrap();
        assert_eq!((r.path, r.column), (PathBuf::from("data#1/nb201.csv"), None));
        assert!("t.csv#".parse::<TableRef>().is_err());
        assert!("".parse::<TableRef>().is_err());
    }

    #[test]
    fn every_bad_table_is_one_line_naming_the_file_the_line_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = |edit: &dyn Fn(&mut Vec<String>), column: Option<&str>| -> String {
            let path = write_table(dir.path(), "bad.csv", &Op::NB201, edit);
            let e = format!("{:#}", read(&path, column).unwrap_err());
            assert!(!e.contains('\n') && e.contains("bad.csv"), "{e}");
            e
        };
        // `lines[i]` is line i + 1 of the file (the header is line 1).
        let e = err(&|_| {}, None);
        assert!(e.contains("2 measurement columns") && e.contains("#COLUMN"), "{e}");
        let e = err(&|_| {}, Some("cifar100-test@200"));
        assert!(e.contains("no column `cifar100-test@200`") && e.contains("cifar10-test@12"), "{e}");
        let e =
            err(&|l| l[0] = "index,cell,cifar10-test@12,cifar10-test@200".into(), Some("cifar10-test@12"));
        assert!(e.contains("no column `arch`"), "{e}");
        let e = err(&|l| l[5] = "4,|nor_conv_3x3~0|+|conv_7x7~0|none~1|,1,2".into(), Some("cifar10-test@12"));
        assert!(
            e.contains("line 6: arch '|nor_conv_3x3~0|+|conv_7x7~0|none~1|' is not a 3-node nb201 cell"),
            "{e}"
        );
        let e = err(&|l| l[3] = l[3].replace(",50.5,", ",n/a,"), Some("cifar10-test@12"));
        assert!(e.contains("line 4: column `cifar10-test@12` holds 'n/a', expected a finite number"), "{e}");
        let e = err(&|l| l[3] = l[3].replace(",50.5,", ",,"), Some("cifar10-test@12"));
        assert!(e.contains("line 4: no value in column `cifar10-test@12`"), "{e}");
        let e = err(&|l| l[3] = l[2].clone(), Some("cifar10-test@12"));
        assert!(e.contains("twice (lines 3 and 4)"), "{e}");
        let e = err(&|l| drop(l.remove(7)), Some("cifar10-test@12"));
        assert!(e.contains("has 124 cells") && e.contains("number 125") && e.contains("is missing"), "{e}");
        let e = err(&|l| l[4].push_str(",7"), Some("cifar10-test@12"));
        assert!(e.contains("line 5: 5 fields where the header has 4"), "{e}");
        let e = err(&|l| l.truncate(1), Some("cifar10-test@12"));
        assert!(e.contains("no rows"), "{e}");
        let e = format!("{:#}", read(&dir.path().join("nope.csv"), None).unwrap_err());
        assert!(e.contains("nope.csv") && e.contains("pwsnas benchmark import"), "{e}");
    }

    #[test]
    fn a_table_must_cover_the_runs_space() {
        let dir = tempfile::tempdir().unwrap();
        let small = [Op::None, Op::SkipConnect, Op::NorConv3x3];
        let path = write_table(dir.path(), "t.csv", &small, |_| {});
        let t = read(&path, Some("cifar10-test@12")).unwrap();
        assert_eq!(t.len(), 27);
        let nb201 = |nodes, ops: &[Op]| {
            SpaceKind::new(Nb201Params { nodes, ops: ops.to_vec(), ..Nb201Params::default() })
        };
        t.check_covers(&nb201(3, &small)).unwrap();
        t.check_covers(&nb201(3, &[Op::None, Op::NorConv3x3])).unwrap();
        let e = format!("{:#}", t.check_covers(&nb201(4, &small)).unwrap_err());
        assert!(e.contains("3-node cells") && e.contains("4 nodes"), "{e}");
        let e = format!("{:#}", t.check_covers(&nb201(3, &Op::NB201)).unwrap_err());
        assert!(e.contains("op nor_conv_1x1, which no cell of the table uses"), "{e}");
        let e = format!("{:#}", t.check_covers(&SpaceKind::by_name("mobile").unwrap()).unwrap_err());
        assert!(e.contains("this run's space is mobile"), "{e}");
    }
}
