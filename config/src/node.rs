//! `node`: this broker node.

use std::path::PathBuf;

use serde::Deserialize;

/// `node`: settings of this broker node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with the node settings")]
pub struct NodeConfig {
    /// `node.name`: this node's name, `name@host` as in EMQX; it appears in `$SYS/brokers/<name>/...`
    /// topics. Default `"tributary@127.0.0.1"`.
    pub name: String,
    /// `node.data_dir`: where the node keeps its files, relative to the working directory
    /// unless absolute. Default `"data"`.
    pub data_dir: PathBuf,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: "tributary@127.0.0.1".to_owned(),
            data_dir: PathBuf::from("data"),
        }
    }
}
