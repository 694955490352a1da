//! The search method's settings: which method runs on the (shrunk) space (`search.method`) and the
//! hyperparameters of the gradient-based ones (`[gradient]`).
//!
//! Defaults are the papers' public code's: DARTS (Liu et al., ICLR 2019, `train_search.py`): weights
//! by SGD at lr 0.025 cosine to 0.001, momentum 0.9, weight decay 3e-4, gradient clip 5; α by Adam
//! at lr 3e-4, betas (0.5, 0.999), weight decay 1e-3; α initialised 1e-3·N(0, 1). ProxylessNAS (Cai
//! et al., ICLR 2019): α updated every 5 weight steps; the latency loss's λ = 0.1 (`add-linear`) or
//! β = 0.3 (`mul-log`). PDARTS (Chen et al., ICCV 2019): 8 → 5 → 3 ops per edge over three stages.
use serde::{Deserialize, Serialize};

/// The search method run after the (optional) shrinking stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// SPOS (Guo et al., ECCV 2020): evolution over the uniformly trained supernet.
    Spos,
    /// FairNAS (Chu et al., ICCV 2021): evolution over the strictly fair supernet (`sampler = fair`).
    Fairnas,
    /// DARTS (Liu et al., ICLR 2019): softmax-relaxed α, first-order alternating updates.
    Darts,
    /// PDARTS (Chen et al., ICCV 2019): DARTS in stages, the weakest ops dropped between stages.
    Pdarts,
    /// ProxylessNAS (Cai et al., ICLR 2019): binary gates over two sampled ops, a latency loss.
    Proxyless,
}

impl Method {
    /// Whether the method learns architecture parameters by gradient (its own training from fresh
    /// weights on the shrunk space) rather than searching the shrinking supernet by evolution.
    pub fn is_gradient(self) -> bool {
        matches!(self, Method::Darts | Method::Pdarts | Method::Proxyless)
    }

    /// Weight steps per α step when `gradient.alpha_every` leaves it open.
    pub fn default_alpha_every(self) -> usize {
        if self == Method::Proxyless {
            5
        } else {
            1
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::Spos => "spos",
            Method::Fairnas => "fairnas",
            Method::Darts => "darts",
            Method::Pdarts => "pdarts",
            Method::Proxyless => "proxyless",
        }
    }
}

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
            target_latency_ms: None,
            latency_loss: LatencyLoss::AddLinear,
            latency_weight: 0.1,
        }
    }
}

impl GradientSettings {
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
