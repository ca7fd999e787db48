//! One error type for every way a `.pyc` can be bad.
use std::fmt;

/// What went wrong, where (a byte offset in the file) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Byte offset in the file (header included) where the problem was found.
    pub offset: usize,
    /// What was expected there, or what is wrong with it.
    pub message: String,
}

impl Error {
    pub fn new(offset: usize, message: impl Into<String>) -> Self {
        Error {
            offset,
            message: message.into(),
        }
    }

    /// The message with the file named, as users see it.
    pub fn with_file(&self, file: &str) -> String {
        format!(
            "{file}: offset {} (0x{:x}): {}",
            self.offset, self.offset, self.message
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "offset {} (0x{:x}): {}",
            self.offset, self.offset, self.message
        )
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
