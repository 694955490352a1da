//! A serialisable description of loaded data, for `pwsnas data inspect` and for run records.

use std::fmt;

use crate::dataset::Splits;
use crate::normalize::Normalization;

/// Counts, shape and training statistics of a loaded dataset.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DataSummary {
    pub name: String,
    pub source: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub train_images: usize,
    pub test_images: usize,
    /// One entry per class, by label.
    pub classes: Vec<ClassSummary>,
    /// Per-channel mean and std of the training split, in `[0, 1]` pixel units.
    pub train_normalization: Normalization,
}

/// How many images of one class each split holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClassSummary {
    pub label: u32,
    pub name: String,
    pub train: usize,
    pub test: usize,
}

/// Describes `splits`: shape, counts per split and per class, and the training statistics.
pub fn summary(splits: &Splits) -> DataSummary {
    let (train, test) = (&splits.train, &splits.test);
    let test_counts = test.class_counts();
    let classes = train
        .classes
        .iter()
        .zip(train.class_counts())
        .enumerate()
        .map(|(label, (name, n))| ClassSummary {
            label: label as u32,
            name: name.clone(),
            train: n,
            test: test_counts.get(label).copied().unwrap_or(0),
        })
        .collect();
    DataSummary {
        name: splits.name.clone(),
        source: splits.source.display().to_string(),
        channels: train.channels,
        height: train.height,
        width: train.width,
        train_images: train.len(),
        test_images: test.len(),
        classes,
        train_normalization: Normalization::compute(train),
    }
}

/// A short human-readable report: header lines, then one line per class.
impl fmt::Display for DataSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "dataset  {} ({})", self.name, self.source)?;
        writeln!(f, "shape    {}x{}x{} (CxHxW)", self.channels, self.height, self.width)?;
        writeln!(
            f,
            "images   {} train, {} test, {} classes",
            self.train_images,
            self.test_images,
            self.classes.len()
        )?;
        let list = |v: &[f32]| v.iter().map(|x| format!("{x:.4}")).collect::<Vec<_>>().join(", ");
        writeln!(f, "mean     [{}]", list(&self.train_normalization.mean))?;
        writeln!(f, "std      [{}]", list(&self.train_normalization.std))?;
        let width = self.classes.iter().map(|c| c.name.len()).max().unwrap_or(0).max(5);
        writeln!(f, "{:>5}  {:<width$}  {:>8}  {:>8}", "label", "class", "train", "test")?;
        for c in &self.classes {
            writeln!(f, "{:>5}  {:<width$}  {:>8}  {:>8}", c.label, c.name, c.train, c.test)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::tests::counting;

    #[test]
    fn counts_and_statistics() {
        let splits =
            Splits { train: counting(7, 3), test: counting(2, 3), name: "t".into(), source: "/x".into() };
        let s = summary(&splits);
        assert_eq!((s.train_images, s.test_images, s.channels, s.height, s.width), (7, 2, 1, 2, 2));
        assert_eq!(
            s.classes.iter().map(|c| (c.train, c.test)).collect::<Vec<_>>(),
            vec![(3, 1), (2, 1), (2, 0)]
        );
        assert_eq!(s.train_normalization, Normalization::compute(&splits.train));
        let text = s.to_string();
        assert!(text.contains("7 train, 2 test, 3 classes"), "{text}");
    }
}
