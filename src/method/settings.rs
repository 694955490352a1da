//! The gradient-based methods' settings (`[gradient]`): their hyperparameters, PDARTS's schedule
//! and ProxylessNAS's latency loss. Which method runs (`search.method`) is [`super::Method`].
//!
//! Defaults are the papers' public code's: DARTS (Liu et al., ICLR 2019, `train_search.py`): weights
//! by SGD at lr 0.025 cosine to 0.001, momentum 0.9, weight decay 3e-4, gradient clip 5; α by Adam
//! at lr 3e-4, betas (0.5, 0.999), weight decay 1e-3; α initialised 1e-3·N(0, 1). ProxylessNAS (Cai
//! et al., ICLR 2019): α updated every 5 weight steps; the latency loss's λ = 0.1 (`add-linear`) or
//! β = 0.3 (`mul-log`). PDARTS (Chen et al., ICCV 2019, `train_search.py`): 8 → 5 → 3 ops per edge
//! over three stages of 5 → 11 → 17 cells, each stage's network built afresh; dropout on
//! `skip_connect` of 0.1, 0.4, 0.7 by stage (its CIFAR-10 command), decaying within the stage; the
//! first 10 of each stage's 25 epochs train the weights only.
//!
//! pwsnas's own choices where PDARTS's schedule must stretch over another number of stages or
//! epochs: the skip dropout by default runs linearly from 0.1 in the first stage to 0.7 in the last
//! (exactly PDARTS's for three stages, 0.1 for a single one); the weights-only epochs default to
//! ⌊2·epochs/5⌋ (PDARTS's 10 of 25); the depth stays the space's own unless `pdarts_depth` grows it
//! (the search space's size is the user's choice, and ABS, after shrinking, runs a single stage).
use serde::{Deserialize, Serialize};

/// The form of ProxylessNAS's latency loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LatencyLoss {
    /// `CE + λ·(E[lat] − target)/target`.
    AddLinear,
    /// `CE · (log E[lat] / log target)^β`.
    MulLog,
}

// Left out of the serialised settings at its default, so that runs made before it existed keep
// their fingerprints.
fn is_first_order(order: &u8) -> bool {
    *order == 1
}

/// Settings of the gradient-based methods (DARTS, PDARTS, ProxylessNAS).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GradientSettings {
    /// Epochs of the method (per stage for PDARTS).
    pub epochs: usize,
    pub batch_size: usize,
    /// Stop each epoch after this many weight steps (for quick runs); all batches by default.
    pub steps_per_epoch: Option<usize>,
    /// Weights: SGD learning rate, cosine-annealed to `w_lr_min`.
    pub w_lr: f64,
    pub w_lr_min: f64,
    pub w_momentum: f64,
    pub w_weight_decay: f64,
    pub w_grad_clip: f64,
    /// DARTS's α gradient (`--darts-order`): 1, first order (the weights taken as they are); 2,
    /// the unrolled step of DARTS's `architect.py` (the gradient at the weights after one virtual
    /// SGD step, its Hessian-vector term by finite differences). DARTS and PDARTS only.
    #[serde(skip_serializing_if = "is_first_order")]
    pub darts_order: u8,
    /// α: Adam learning rate, betas and weight decay.
    pub alpha_lr: f64,
    pub alpha_betas: [f64; 2],
    pub alpha_weight_decay: f64,
    /// Weight steps per α step; the method's own when absent (ProxylessNAS: 5; DARTS and PDARTS
    /// alternate: 1).
    pub alpha_every: Option<usize>,
    /// PDARTS: surviving ops per choice point in each stage after the first (the first stage uses
    /// the space as given), e.g. `[3]` for two stages.
    pub pdarts_keep: Vec<usize>,
    /// PDARTS: most choice points whose derived op is `skip_connect`.
    pub max_skip: usize,
    /// PDARTS: the space's depth in each stage (PDARTS: 5 → 11 → 17 cells), one entry per stage:
    /// on `darts` its `layers`, on `nb201` its `cells_per_stage`. The space's own in every stage
    /// when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdarts_depth: Option<Vec<usize>>,
    /// PDARTS: the dropout probability on `skip_connect` at the start of each stage, one entry per
    /// stage ([`GradientSettings::skip_dropout`] gives its decay); 0.1 → 0.7 linearly over the
    /// stages when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdarts_skip_dropout: Option<Vec<f64>>,
    /// PDARTS: epochs at the start of each stage that train the weights only (α stays at its
    /// initialisation); ⌊2·epochs/5⌋ when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdarts_weights_only_epochs: Option<usize>,
    /// ProxylessNAS: target latency of the latency loss (ms, batch 1, the run's latency table);
    /// no latency term when absent.
    pub target_latency_ms: Option<f64>,
    pub latency_loss: LatencyLoss,
    /// λ of `add-linear`, β of `mul-log`.
    pub latency_weight: f64,
}

impl Default for GradientSettings {
    fn default() -> Self {
        GradientSettings {
            epochs: 10,
            batch_size: 64,
            steps_per_epoch: None,
            w_lr: 0.025,
            w_lr_min: 0.001,
            w_momentum: 0.9,
            w_weight_decay: 3e-4,
            w_grad_clip: 5.0,
            alpha_lr: 3e-4,
            alpha_betas: [0.5, 0.999],
            alpha_weight_decay: 1e-3,
            alpha_every: None,
            darts_order: 1,
            pdarts_keep: vec![3],
            max_skip: 2,
            pdarts_depth: None,
            pdarts_skip_dropout: None,
            pdarts_weights_only_epochs: None,
            target_latency_ms: None,
            latency_loss: LatencyLoss::AddLinear,
            latency_weight: 0.1,
        }
    }
}

/// PDARTS's decay of the skip dropout within a stage (`train_search.py`'s `scale_factor`).
const SKIP_DROPOUT_DECAY: f64 = 0.2;

impl GradientSettings {
    /// PDARTS's stages: one per entry of `pdarts_keep`, plus the first.
    pub fn pdarts_stages(&self) -> usize {
        1 + self.pdarts_keep.len()
    }

    /// PDARTS's weights-only epochs at the start of each stage.
    pub fn weights_only_epochs(&self) -> usize {
        self.pdarts_weights_only_epochs.unwrap_or(2 * self.epochs / 5)
    }

    /// PDARTS's dropout probability on `skip_connect` in epoch `epoch` (from 0) of stage `stage`:
    /// with the stage's rate `r`, `W` weights-only epochs and `E` epochs, `r·(E − e − 1)/E` in a
    /// weights-only epoch and `r·exp(−0.2·(e − W))` after (`train_search.py`).
    pub fn skip_dropout(&self, stage: usize, epoch: usize) -> f64 {
        let stages = self.pdarts_stages();
        let rate = match &self.pdarts_skip_dropout {
            Some(rates) => rates[stage],
            None if stages == 1 => 0.1,
            None => 0.1 + 0.6 * stage as f64 / (stages - 1) as f64,
        };
        let warm = self.weights_only_epochs();
        if epoch < warm {
            rate * (self.epochs - epoch - 1) as f64 / self.epochs as f64
        } else {
            rate * (-SKIP_DROPOUT_DECAY * (epoch - warm) as f64).exp()
        }
    }

    /// Checks values serde cannot; the error names the setting.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if self.batch_size == 0 || self.alpha_every == Some(0) {
            bail!("settings gradient.batch_size and gradient.alpha_every must be at least 1");
        }
        if !(1..=2).contains(&self.darts_order) {
            bail!(
                "setting gradient.darts_order (--darts-order) = {}: expected 1 (first order) or 2 (DARTS's unrolled step)",
                self.darts_order
            );
        }
        if !(self.w_lr > 0.0 && self.w_lr_min >= 0.0 && self.w_lr_min <= self.w_lr) {
            bail!("setting gradient.w_lr must be > 0 and gradient.w_lr_min in [0, w_lr]");
        }
        if self.alpha_lr.is_nan()
            || self.alpha_lr <= 0.0
            || self.alpha_betas.iter().any(|b| !(0.0..1.0).contains(b))
        {
            bail!("setting gradient.alpha_lr must be > 0 and gradient.alpha_betas in [0, 1)");
        }
        if self.pdarts_keep.windows(2).any(|w| w[1] >= w[0]) || self.pdarts_keep.contains(&0) {
            bail!(
                "setting gradient.pdarts_keep = {:?}: expected ops per choice point decreasing stage by stage, each at least 1 (e.g. [5, 3])",
                self.pdarts_keep
            );
        }
        let stages = self.pdarts_stages();
        let per_stage = |name: &str, len: usize| -> anyhow::Result<()> {
            if len != stages {
                bail!(
                    "setting gradient.{name} has {len} entries, but PDARTS runs {stages} stage(s) (one more than gradient.pdarts_keep's {}): give one per stage",
                    self.pdarts_keep.len()
                );
            }
            Ok(())
        };
        if let Some(depth) = &self.pdarts_depth {
            per_stage("pdarts_depth", depth.len())?;
            if depth.contains(&0) {
                bail!("setting gradient.pdarts_depth = {depth:?}: every stage needs at least one cell");
            }
        }
        if let Some(rates) = &self.pdarts_skip_dropout {
            per_stage("pdarts_skip_dropout", rates.len())?;
            if rates.iter().any(|r| !(0.0..1.0).contains(r)) {
                bail!("setting gradient.pdarts_skip_dropout = {rates:?}: expected probabilities in [0, 1) (PDARTS: [0.1, 0.4, 0.7])");
            }
        }
        if let Some(w) = self.pdarts_weights_only_epochs {
            if w >= self.epochs {
                bail!(
                    "setting gradient.pdarts_weights_only_epochs = {w} leaves no epoch for α: expected fewer than gradient.epochs ({})",
                    self.epochs
                );
            }
        }
        if let Some(t) = self.target_latency_ms {
            if !(t.is_finite() && t > 0.0) {
                bail!(
                    "setting gradient.target_latency_ms must be a positive number of milliseconds, got {t}"
                );
            }
        }
        if !(self.latency_weight.is_finite() && self.latency_weight >= 0.0) {
            bail!("setting gradient.latency_weight must be ≥ 0, got {}", self.latency_weight);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pdarts_schedule_follows_its_train_search_script() {
        // PDARTS's own: three stages of 25 epochs, the first 10 weights-only, rates 0.1, 0.4, 0.7.
        let g = GradientSettings { epochs: 25, pdarts_keep: vec![5, 3], ..GradientSettings::default() };
        assert_eq!((g.pdarts_stages(), g.weights_only_epochs()), (3, 10));
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        close(g.skip_dropout(0, 0), 0.1 * 24.0 / 25.0);
        close(g.skip_dropout(1, 9), 0.4 * 15.0 / 25.0);
        close(g.skip_dropout(1, 10), 0.4);
        close(g.skip_dropout(2, 15), 0.7 * (-1.0f64).exp());
        // Two stages: 0.1 then 0.7; one stage: 0.1; given rates are taken as they are.
        let two = GradientSettings { epochs: 5, ..GradientSettings::default() };
        assert_eq!(two.weights_only_epochs(), 2);
        close(two.skip_dropout(1, 2), 0.7);
        let one = GradientSettings { epochs: 1, pdarts_keep: vec![], ..GradientSettings::default() };
        assert_eq!(one.weights_only_epochs(), 0);
        close(one.skip_dropout(0, 0), 0.1);
        let given = GradientSettings { pdarts_skip_dropout: Some(vec![0.0, 0.3]), ..two };
        close(given.skip_dropout(0, 0), 0.0);
        close(given.skip_dropout(1, 3), 0.3 * (-0.2f64).exp());
    }

    #[test]
    fn bad_pdarts_schedules_are_refused_naming_the_setting() {
        let refused = |g: GradientSettings, expected: &str| {
            let e = g.validate().unwrap_err().to_string();
            assert_eq!(e, expected);
        };
        let d = GradientSettings::default;
        refused(
            GradientSettings { pdarts_skip_dropout: Some(vec![0.1, 0.4, 0.7]), ..d() },
            "setting gradient.pdarts_skip_dropout has 3 entries, but PDARTS runs 2 stage(s) (one more than gradient.pdarts_keep's 1): give one per stage",
        );
        refused(
            GradientSettings { pdarts_skip_dropout: Some(vec![0.1, 1.0]), ..d() },
            "setting gradient.pdarts_skip_dropout = [0.1, 1.0]: expected probabilities in [0, 1) (PDARTS: [0.1, 0.4, 0.7])",
        );
        refused(
            GradientSettings { pdarts_depth: Some(vec![5]), ..d() },
            "setting gradient.pdarts_depth has 1 entries, but PDARTS runs 2 stage(s) (one more than gradient.pdarts_keep's 1): give one per stage",
        );
        refused(
            GradientSettings { pdarts_depth: Some(vec![5, 0]), ..d() },
            "setting gradient.pdarts_depth = [5, 0]: every stage needs at least one cell",
        );
        refused(
            GradientSettings { pdarts_weights_only_epochs: Some(10), ..d() },
            "setting gradient.pdarts_weights_only_epochs = 10 leaves no epoch for α: expected fewer than gradient.epochs (10)",
        );
    }
}
