//! Hot reload: on a change of the config file (or its directory, so a
//! Kubernetes ConfigMap symlink swap is seen) and on SIGHUP, parse and
//! validate the file fully, then swap it in atomically; a bad file is logged
//! and counted and the last good config keeps serving. TLS certificate files
//! are re-read on the same triggers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::server::TlsReloader;
use crate::state::AppState;

/// Changes arriving within this window are handled as one reload.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Watches `dirs` and calls `on_change` with the paths of each event that
/// may change a file's content: creation, modification, removal, renames,
/// metadata, a close after writing. Opening and reading are not changes —
/// the reload itself opens the config, so passing those on would re-read it
/// every [`DEBOUNCE`] for ever. `None` (logged) when watching is unavailable.
fn change_watcher(
    dirs: &[PathBuf],
    on_change: impl Fn(&[PathBuf]) + Send + 'static,
) -> Option<notify::RecommendedWatcher> {
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res
            && is_change(&event.kind)
        {
            on_change(&event.paths);
        }
    });
    match watcher {
        Ok(mut w) => {
            for d in dirs {
                if let Err(e) = w.watch(d, RecursiveMode::NonRecursive) {
                    tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory; reload on SIGHUP only");
                }
            }
            Some(w)
        }
        Err(e) => {
            tracing::warn!(error = %e, "file watching unavailable; reload on SIGHUP only");
            None
        }
    }
}

/// False for events that only read: open, read, close without writing.
fn is_change(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::Access(
            AccessKind::Open(_) | AccessKind::Read | AccessKind::Close(AccessMode::Read)
        )
    )
}

pub async fn watch(
    path: PathBuf,
    state: Arc<AppState>,
    tls: Option<Arc<TlsReloader>>,
    signals: bool,
    mut shutdown: watch::Receiver<bool>,
) {
    // `true`: SIGHUP (always re-validate); `false`: a file event.
    let (tx, mut rx) = mpsc::channel::<bool>(16);
    let mut dirs: Vec<PathBuf> = vec![
        path.parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(".")),
    ];
    if let Some(t) = &tls {
        for p in t.paths() {
            if let Some(d) = p.parent()
                && !dirs.iter().any(|x| x == d)
            {
                dirs.push(d.to_path_buf());
            }
        }
    }
    let notify_tx = tx.clone();
    let _watcher = change_watcher(&dirs, move |_| {
        let _ = notify_tx.try_send(false);
    });
    #[cfg(unix)]
    if signals {
        let hup_tx = tx.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            if let Ok(mut hup) = signal(SignalKind::hangup()) {
                while hup.recv().await.is_some() {
                    let _ = hup_tx.send(true).await;
                }
            }
        });
    }
    // The text last applied, and the last refusal (text and reason): a file
    // event that changes neither is not re-validated or logged again. A
    // SIGHUP always re-validates, so a rotated `*_file` secret or a fixed
    // referenced file is applied even when the config text is the same.
    let mut last_text = std::fs::read_to_string(&path).ok();
    let mut last_refusal: Option<(Option<String>, String)> = None;
    loop {
        let mut forced = tokio::select! {
            _ = shutdown.changed() => return,
            got = rx.recv() => match got { Some(f) => f, None => return },
        };
        // Debounce a burst of events (editors and symlink swaps write several).
        tokio::time::sleep(DEBOUNCE).await;
        while let Ok(f) = rx.try_recv() {
            forced |= f;
        }
        if let Some(t) = &tls
            && let Err(e) = t.reload()
        {
            tracing::warn!(error = %e, "TLS certificate reload failed; keeping the current certificate");
        }
        let text = std::fs::read_to_string(&path).ok();
        if !forced && text.is_some() && text == last_text && last_refusal.is_none() {
            continue;
        }
        let loaded = Config::load(&path);
        let current = state.current();
        let outcome = match loaded {
            Err(errs) => Err(format!("{errs}")),
            Ok(cfg) => {
                let changed = current.config.restart_only().changed(&cfg.restart_only());
                if changed.is_empty() {
                    state.install(cfg).map_err(|e| e.to_string())
                } else {
                    Err(format!(
                        "{} only take{} effect on a restart (restart the gateway to apply {}, or undo the change)",
                        changed.join(", "),
                        if changed.len() == 1 { "s" } else { "" },
                        if changed.len() == 1 { "it" } else { "them" },
                    ))
                }
            }
        };
        match outcome {
            Ok(()) => {
                last_text = text;
                last_refusal = None;
                state.metrics.reloads.with_label_values(&["ok"]).inc();
                tracing::info!(path = %path.display(), "configuration reloaded");
            }
            Err(why) => {
                let refusal = (text, why);
                if !forced && last_refusal.as_ref() == Some(&refusal) {
                    continue;
                }
                let why = &refusal.1;
                last_refusal = Some(refusal.clone());
                state.metrics.reloads.with_label_values(&["error"]).inc();
                tracing::error!(path = %path.display(), error = %why, "configuration reload refused; keeping the last good configuration");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real inotify watcher: reading the config (as every reload does)
    /// passes nothing on; the next write does. Events arrive in order, so
    /// the first one through must be the write's.
    #[test]
    fn reading_the_config_is_not_a_change_and_writing_is() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("portcullis.toml");
        std::fs::write(&config, "# config\n").expect("write config");
        let (tx, rx) = std::sync::mpsc::channel::<Vec<PathBuf>>();
        let tx = std::sync::Mutex::new(tx);
        let _w = change_watcher(&[dir.path().to_path_buf()], move |paths| {
            let _ = tx.lock().expect("sender").send(paths.to_vec());
        })
        .expect("inotify watcher");
        for _ in 0..3 {
            let text = std::fs::read_to_string(&config).expect("read config");
            assert_eq!(text, "# config\n");
        }
        let marker = dir.path().join("written");
        std::fs::write(&marker, "x").expect("write marker");
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the write is reported");
        assert_eq!(
            first,
            vec![marker],
            "a read of the config was reported as a change"
        );
    }

    #[test]
    fn only_read_access_is_ignored() {
        use notify::event::{CreateKind, ModifyKind, RemoveKind};
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Read)));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Any)));
        assert!(is_change(&EventKind::Remove(RemoveKind::File)));
        assert!(is_change(&EventKind::Any));
    }
}
