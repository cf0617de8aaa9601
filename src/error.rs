//! The crate's one error type.

use std::fmt;

/// Everything that can go wrong in sam2-webgpu, grouped by whose fault it is.
///
/// Every public fallible function returns [`Result<T>`]; nothing panics on bad input.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A model configuration is invalid or cannot be read (YAML, preset name, inconsistent sizes).
    Config(String),
    /// A checkpoint cannot be read or does not fit the model (format, missing/unused keys, shapes).
    Weights(String),
    /// A caller's input is invalid (image size, prompt coordinates, NaN, shapes of mask inputs).
    Input(String),
    /// An operation was called in the wrong state (e.g. `predict` before `set_image`).
    State(String),
    /// Reading or writing a file failed.
    Io(String),
    /// The caller stopped a long operation (a progress callback returned `false`).
    Cancelled,
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "invalid model config: {m}"),
            Error::Weights(m) => write!(f, "invalid checkpoint: {m}"),
            Error::Input(m) => write!(f, "invalid input: {m}"),
            Error::State(m) => write!(f, "invalid state: {m}"),
            Error::Io(m) => write!(f, "i/o error: {m}"),
            Error::Cancelled => write!(f, "cancelled"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}
