//! The `eye` command-line tool's parts, each usable by the commands that need them:
//! reading events ([`input`]), checking them offline ([`check`]), profiles and settings
//! ([`profile`]), rendering answers ([`output`]), errors with hints ([`error`]) and progress
//! on the terminal ([`progress`]); the commands that talk to the services, through
//! `eye-client` ([`remote`]). The commands themselves are in [`cli`].

pub mod check;
pub mod cli;
pub mod error;
pub mod input;
pub mod output;
pub mod profile;
pub mod progress;
pub mod remote;
