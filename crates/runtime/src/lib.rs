//! What every binary of The Eye needs before it does its own job: configuration groups read
//! from `EYE_*` variables, logs and metrics, and the shutdown signal.

pub mod config;
pub mod shutdown;
pub mod telemetry;
