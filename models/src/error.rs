//! Errors of spaces, archs and networks. Each names what was wrong and what was expected, so the CLI
//! can show it as is.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("unknown op '{0}': expected one of none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3, identity, mb_k<kernel>_e<expansion>, max_pool_3x3, sep_conv_<k>x<k>, dil_conv_<k>x<k>")]
    UnknownOp(String),
    #[error("unknown space '{0}': expected nb201 or mobile")]
    UnknownSpace(String),
    #[error("malformed arch string '{arch}': {reason}")]
    MalformedArch { arch: String, reason: String },
    #[error("arch '{arch}' is not in the space: choice point {choice_point} allows [{allowed}], got {op}")]
    OutsideSpace { arch: String, choice_point: String, op: String, allowed: String },
    #[error("bad genotype: {at}: {reason}")]
    Genotype { at: String, reason: String },
    #[error("invalid space: {0}")]
    InvalidSpace(String),
    #[error("invalid {space} parameter '{field}': {reason}")]
    InvalidParam { space: String, field: String, reason: String },
    #[error("unknown network piece '{0}': expected stem, head, reduction<S>, stage<S>/<op>, stage<S>/sum<K>, stage<S>/zeros or layer<L>/<op>")]
    UnknownPiece(String),
    #[error("weights do not fit the network: {0}")]
    Weights(String),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
