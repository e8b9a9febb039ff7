//! One rendered page (`/metrics`, an `/inventory` view), shared by the
//! requests of a second: rendered by one request at a time, held only while
//! needed when large.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use super::*;

/// Renders the registry with the uptime refreshed.
pub fn render_metrics(m: &Metrics, live: &LiveMetrics, started: Instant) -> String {
    live.uptime.set(started.elapsed().as_secs() as i64);
    m.render()
}

/// A page (metrics, an inventory view), rendered by one request at a time
/// and shared by the requests of the next [`PAGE_FRESH`]. A page larger
/// than [`KEEP_BYTES`] is held only while some response still sends it, so
/// a large inventory view does not stay in memory between requests.
pub struct Page {
    pub(super) render: Box<dyn Fn() -> Option<Vec<u8>> + Send + Sync>,
    pub(super) state: Mutex<PageState>,
    pub(super) done: Condvar,
}

/// Pages up to this size stay cached between requests.
pub const KEEP_BYTES: usize = 8 << 20;

pub(super) enum Cached {
    Kept(Arc<[u8]>),
    Sending(std::sync::Weak<[u8]>),
    /// Over its cap: refused.
    Refused,
}

#[derive(Default)]
pub(super) struct PageState {
    pub(super) cached: Option<(Instant, Cached)>,
    pub(super) rendering: bool,
}

impl Page {
    pub fn new(render: Box<dyn Fn() -> Option<Vec<u8>> + Send + Sync>) -> Page {
        Page {
            render,
            state: Mutex::new(PageState::default()),
            done: Condvar::new(),
        }
    }

    /// A page that is always rendered whole (`/metrics`).
    pub fn always(render: Box<dyn Fn() -> String + Send + Sync>) -> Page {
        Page::new(Box::new(move || Some(render().into_bytes())))
    }

    /// The page as of at most [`PAGE_FRESH`] ago; renders it if older,
    /// unless another request is rendering it already (then waits for
    /// that). `None`: the page is over its cap.
    pub fn get(&self) -> Option<Arc<[u8]>> {
        let mut st = crate::sync::lock(&self.state);
        loop {
            if let Some((at, cached)) = &st.cached
                && at.elapsed() < PAGE_FRESH
            {
                match cached {
                    Cached::Kept(page) => return Some(Arc::clone(page)),
                    Cached::Sending(weak) => {
                        if let Some(page) = weak.upgrade() {
                            return Some(page);
                        }
                    }
                    Cached::Refused => return None,
                }
            }
            if !st.rendering {
                break;
            }
            st = crate::sync::wait(&self.done, st);
        }
        st.rendering = true;
        // The old page goes before the new one is made: never both.
        st.cached = None;
        drop(st);
        let page: Option<Arc<[u8]>> = (self.render)().map(Arc::from);
        let mut st = crate::sync::lock(&self.state);
        st.rendering = false;
        let cached = match &page {
            Some(p) if p.len() <= KEEP_BYTES => Cached::Kept(Arc::clone(p)),
            Some(p) => Cached::Sending(Arc::downgrade(p)),
            None => Cached::Refused,
        };
        st.cached = Some((Instant::now(), cached));
        self.done.notify_all();
        page
    }
}
