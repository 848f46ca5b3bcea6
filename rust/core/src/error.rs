use std::fmt;

/// Errors from the statistics core. `Input` is a caller mistake, `Corrupt` a bad serialised blob.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    Input(String),
    Corrupt(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input(m) => write!(f, "{m}"),
            Error::Corrupt(m) => write!(f, "corrupt accumulator bytes: {m}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
