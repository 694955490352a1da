//! Errors of spaces, archs and networks. Each names what was wrong and what was expected, so the CLI
//! can show it as is.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("unknown op '{name}': expected one of {expected}")]
    UnknownOp { name: String, expected: String },
    #[error("unknown space '{name}': expected one of {expected}")]
    UnknownSpace { name: String, expected: String },
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
    #[error("unknown network piece '{name}': expected one of {expected}")]
    UnknownPiece { name: String, expected: String },
    #[error("no auxiliary head: {0}")]
    NoAuxHead(String),
    #[error("weights do not fit the network: {0}")]
    Weights(String),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
