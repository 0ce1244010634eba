//! `node`: this broker node.

use std::path::PathBuf;

use serde::Deserialize;

/// `node`: settings of this broker node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with the node settings")]
pub struct NodeConfig {
    /// `node.data_dir`: where the node keeps its state (sessions, retained messages), relative to
    /// the working directory unless absolute. Default `"data"`.
    pub data_dir: PathBuf,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
        }
    }
}
