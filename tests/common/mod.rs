//! Test harness: the real `authz-edge` binary against in-test upstreams, on 127.0.0.1:0.
//!
//! `upstream` has the in-test upstreams, `harness` the proxy process, `client` the raw
//! clients, `fixtures` ports, files and certificates, `poll` the one way to wait for something;
//! `django` runs the real Django app and `sink` reads the diagnostics sink.
#![allow(dead_code)]
#![allow(unused_imports)]

pub mod browser;
pub mod client;
pub mod django;
pub mod fixtures;
pub mod h2raw;
pub mod harness;
pub mod nginx;
pub mod poll;
pub mod recorder;
pub mod sink;
pub mod upstream;

pub use client::*;
pub use fixtures::*;
pub use harness::*;
pub use upstream::*;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
