//! Wall-clock time as the tokens and the database need it: whole seconds
//! since the Unix epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn unix_now() -> i64 {
    // A clock before 1970 is a broken host; 0 keeps us from panicking on it.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// RFC 3339 in UTC, for people reading the CLI's output.
pub fn rfc3339(unix: i64) -> String {
    let secs = u64::try_from(unix).unwrap_or(0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}
