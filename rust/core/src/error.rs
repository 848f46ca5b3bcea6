use std::fmt;

/// Errors from the statistics core. `Input` is a caller mistake, `Unsupported` an input type the engine
/// does not count, `Corrupt` a bad serialised blob.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    Input(String),
    Unsupported(String),
    Corrupt(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input(m) | Error::Unsupported(m) => write!(f, "{m}"),
            Error::Corrupt(m) => write!(f, "corrupt accumulator bytes: {m}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
