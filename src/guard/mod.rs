//! The checks a client's request passes before anything is forwarded: its head, its target and
//! its body's size. A refused request gets its 4xx here and never reaches Django.

pub mod body;
pub mod head;
pub mod target;
