//! The network model (being written).
