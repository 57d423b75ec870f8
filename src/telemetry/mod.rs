//! What responses tell about authorization: classified, counted, watched for spikes, and named
//! as findings. Nothing here knows about connections or the config file.

pub mod classify;
pub mod detector;
pub mod findings;
pub mod identity;
pub mod labels;
pub mod metrics;
pub mod observed;
pub mod release;
pub mod sketch;
pub mod spike;
pub mod vocabulary;
