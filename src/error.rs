//! Setup and I/O errors: everything that is not about one packet.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum SetupError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    NotCapture { path: String, reason: String },
    #[error("{path}: cannot list directory: {source}")]
    ListDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid option: {0}")]
    Config(String),
    /// A configuration file refused: `FILE:LINE: why`.
    #[error("{0}")]
    ConfigFile(String),
    #[error("{what} {path}: {source}")]
    Write {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("interface {name}: {reason}")]
    Interface { name: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("dropping privileges: {0}")]
    Privileges(String),
    #[error("cannot start thread: {0}")]
    Thread(std::io::Error),
    #[error("the {0} thread panicked")]
    ThreadPanicked(&'static str),
    #[error("metrics registry: {0}")]
    Registry(#[from] prometheus::Error),
}
