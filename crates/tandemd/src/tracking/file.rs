//! Watches one `track_file` with inotify (on its directory, so creation, replacement by
//! rename and deletion are seen): after each write or move-in the file's number is read
//! again; a file that is deleted or moved away counts as 0, as keepalived does.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use inotify::{EventMask, Inotify, WatchMask};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::{Event, FileSpec};

/// Reads the number in `path` as keepalived does: leading blanks, an optional sign, decimal
/// or `0x` hex digits, whatever follows ignored; no digits (or no file) reads as 0. `Err` for
/// a number out of the 32-bit range (keepalived ignores such a reading).
pub fn read_value(path: &Path) -> Result<i64, String> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes[..bytes.len().min(127)]).into_owned(),
        Err(_) => return Ok(0),
    };
    parse_value(&text).ok_or_else(|| {
        format!(
            "Invalid number `{}` read from {} - ignoring",
            text.trim(),
            path.display()
        )
    })
}

/// [`read_value`]'s parsing.
pub fn parse_value(text: &str) -> Option<i64> {
    let t = text.trim_start();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, t) = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(rest) => (16, rest),
        None => (10, t),
    };
    let digits: String = t.chars().take_while(|c| c.is_digit(radix)).collect();
    if digits.is_empty() {
        return Some(0);
    }
    let value = i64::from_str_radix(&digits, radix).ok()?;
    let value = if negative { -value } else { value };
    (i64::from(i32::MIN)..=i64::from(i32::MAX) + 1)
        .contains(&value)
        .then_some(value)
}

/// Writes `init_file`'s value when the file does not exist (or always with `overwrite`).
pub fn initialise(spec: &FileSpec) {
    let Some((value, overwrite)) = spec.init else {
        return;
    };
    if spec.path.exists() && !overwrite {
        return;
    }
    if let Err(e) = std::fs::write(&spec.path, format!("{value}\n")) {
        warn!(
            "{}: track_file {}: initialising {}: {e}",
            spec.location,
            spec.name,
            spec.path.display()
        );
    }
}

/// Watches `spec.path` until the task is aborted, sending each new value.
pub async fn watch(spec: FileSpec, generation: u64, events: mpsc::UnboundedSender<Event>) {
    let dir: PathBuf = match spec.path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(file_name) = spec.path.file_name().map(|n| n.to_os_string()) else {
        warn!(
            "{}: track_file {}: `{}` names no file",
            spec.location,
            spec.name,
            spec.path.display()
        );
        return;
    };
    let stream = Inotify::init().and_then(|inotify| {
        let mask = WatchMask::CLOSE_WRITE
            | WatchMask::MOVED_TO
            | WatchMask::MOVED_FROM
            | WatchMask::DELETE;
        inotify.watches().add(&dir, mask)?;
        inotify.into_event_stream([0u8; 4096])
    });
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            warn!(
                "{}: track_file {}: watching {}: {e}; its value stays as read at start",
                spec.location,
                spec.name,
                dir.display()
            );
            return;
        }
    };
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                warn!("track_file {}: inotify: {e}", spec.name);
                continue;
            }
        };
        if event.mask.contains(EventMask::ISDIR)
            || event.name.as_deref() != Some(file_name.as_os_str())
        {
            continue;
        }
        let value = if event
            .mask
            .intersects(EventMask::DELETE | EventMask::MOVED_FROM)
        {
            Ok(0)
        } else {
            read_value(&spec.path)
        };
        match value {
            Ok(value) => {
                let event = Event::File {
                    name: spec.name.clone(),
                    generation,
                    value,
                };
                if events.send(event).is_err() {
                    return;
                }
            }
            Err(e) => info!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_value;

    #[test]
    fn numbers_read_like_strtol() {
        assert_eq!(parse_value("5\n"), Some(5));
        assert_eq!(parse_value("  -12 apples"), Some(-12));
        assert_eq!(parse_value("0x10"), Some(16));
        assert_eq!(parse_value("abc"), Some(0));
        assert_eq!(parse_value(""), Some(0));
        assert_eq!(parse_value("99999999999"), None);
    }
}
