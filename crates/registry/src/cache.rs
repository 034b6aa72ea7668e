//! The record cache: the JSON of images this registry has read, kept so that a show or a
//! list page need not read an image's row and children from the database again while they
//! have not changed.
//!
//! Whether they have changed is never guessed. Every write bumps its image's stripe counter
//! in the same transaction (`db::generations`, moved only by `db::locked`, the one write
//! path); an entry remembers the counter read before
//! it was loaded, and is served only while a read of the counters that *started after the
//! request arrived* still shows that value. So a request sees every change committed before
//! it arrived, by this registry or any other sharing the database, as it would reading the
//! tables itself. Reads of the counters are shared: while one is in flight, requests that
//! arrive wait for the next, and one read answers them all ([`Freshness`]).
//!
//! Entries also expire after `record_cache_max_age` seconds, which bounds how long a change
//! made behind the registries' back (SQL typed by hand) can go unseen.
//!
//! The cache holds at most `record_cache_size` bytes of entries. When a new entry needs
//! room, the least recently used entries go first (an `lru::LruCache`: a show, a list page,
//! a delete's look at the record and a keep all count as a use).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glance_model::{Context, Image, ImageId, Visibility};
use tokio::sync::watch;

use crate::db::Database;
use crate::db::generations::{self, Generations};
use crate::db::images::Cached;

/// One read of the counters, numbered in the order they started.
#[derive(Debug, Clone)]
struct Checked {
    seq: u64,
    /// `None` when the read failed (the database is unreachable, say).
    generations: Option<Arc<Generations>>,
}

/// Reads of the counters, shared by concurrent requests (see the module's documentation).
#[derive(Debug)]
pub struct Freshness {
    state: Mutex<Reads>,
    /// The last read to finish (or a bare wake-up when one was abandoned).
    published: watch::Sender<Checked>,
}

/// Where the reads of the counters stand.
#[derive(Debug, Default)]
struct Reads {
    /// How many have started; the next gets this plus one as its number.
    started: u64,
    /// Whether one is in flight.
    running: bool,
}

impl Default for Freshness {
    fn default() -> Self {
        Self {
            state: Mutex::new(Reads::default()),
            published: watch::Sender::new(Checked {
                seq: 0,
                generations: None,
            }),
        }
    }
}

impl Freshness {
    /// Counters read by a read that started after this call; `None` when that read failed.
    /// `read` performs one read. At most one runs at a time, in the future of the request
    /// that started it; if that request goes away mid-read, the waiters are woken to start
    /// another.
    pub async fn current<F, Fut>(&self, read: F) -> Option<Arc<Generations>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Option<Generations>>,
    {
        let mut rx = self.published.subscribe();
        let need = self.lock().started + 1;
        loop {
            {
                let seen = rx.borrow_and_update();
                if seen.seq >= need {
                    return seen.generations.clone();
                }
            }
            let start = {
                let mut reads = self.lock();
                if reads.running {
                    None
                } else {
                    reads.started += 1;
                    reads.running = true;
                    Some(reads.started)
                }
            };
            if let Some(seq) = start {
                let running = Running(Some(self));
                let out = read().await.map(Arc::new);
                running.finished();
                // Marked idle before the result is published: a waiter woken by it that
                // needs a later read must find it free to start one.
                self.lock().running = false;
                self.published.send_replace(Checked {
                    seq,
                    generations: out.clone(),
                });
                return out;
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    }

    /// The counters of the last read to finish, without waiting for or starting one; `None`
    /// before the first, or when it failed.
    pub fn latest(&self) -> Option<Arc<Generations>> {
        self.published.borrow().generations.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reads> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A read in flight; dropped unfinished (its request went away), it frees the slot and
/// wakes the waiters so that one of them starts another.
struct Running<'a>(Option<&'a Freshness>);

impl Running<'_> {
    /// The read finished: its caller publishes the result.
    fn finished(mut self) {
        self.0 = None;
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(fresh) = self.0 {
            fresh.lock().running = false;
            fresh.published.send_modify(|_| {});
        }
    }
}

/// An image's JSON as the registry answers it, with what serving it needs.
#[derive(Debug)]
pub struct Record {
    /// Its stripe's counter, read before the image was loaded.
    generation: i64,
    loaded: Instant,
    owner: Option<String>,
    visibility: Visibility,
    /// Whether the image is known to have no members (it was cached as this registry
    /// created it); members are not cached.
    no_members: bool,
    /// The image as JSON.
    pub json: bytes::Bytes,
}

impl Record {
    /// A record of an image loaded when its stripe's counter read `generation`.
    fn new(generation: i64, image: &Image, no_members: bool, json: bytes::Bytes) -> Self {
        Self {
            generation,
            loaded: Instant::now(),
            owner: image.owner.clone(),
            visibility: image.visibility,
            no_members,
            json,
        }
    }

    /// Whether the caller may see the image by the row alone
    /// ([`glance_model::visibility::may_see`] with no membership); `false` also where that
    /// takes a look at its members (a shared image the caller does not own), which the
    /// cache does not hold: the database is asked then.
    fn visible_without_members(&self, ctx: &Context) -> bool {
        glance_model::visibility::may_see(ctx, self.owner.as_deref(), self.visibility, None)
    }

    fn size(&self) -> usize {
        self.json.len() + self.owner.as_ref().map_or(0, String::len) + ENTRY_OVERHEAD
    }
}

/// Bytes an entry costs beyond its JSON and owner: the map slot, the record, the visibility.
const ENTRY_OVERHEAD: usize = 160;

/// Cache settings (`[DEFAULT] record_cache_size`, `record_cache_max_age`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheOptions {
    /// Most bytes of entries kept; 0 turns the cache off.
    pub max_bytes: usize,
    /// Longest an entry is served after it was loaded.
    pub max_age: Duration,
}

/// The record cache of one registry process.
#[derive(Debug)]
pub struct RecordCache {
    opts: CacheOptions,
    entries: Mutex<Entries>,
    fresh: Freshness,
}

/// The entries, least recently used first, and their bytes. Unbounded by count: the bound
/// is on bytes, kept by [`RecordCache::put`].
#[derive(Debug)]
struct Entries {
    map: lru::LruCache<ImageId, Arc<Record>>,
    bytes: usize,
}

impl Default for Entries {
    fn default() -> Self {
        Self {
            map: lru::LruCache::unbounded(),
            bytes: 0,
        }
    }
}

impl Entries {
    fn remove(&mut self, id: &ImageId) {
        if let Some(old) = self.map.pop(id) {
            self.bytes -= old.size();
        }
    }
}

impl RecordCache {
    /// A cache with these settings; `None` when they turn it off.
    pub fn new(opts: CacheOptions) -> Option<Self> {
        (opts.max_bytes > 0 && !opts.max_age.is_zero()).then(|| Self {
            opts,
            entries: Mutex::new(Entries::default()),
            fresh: Freshness::default(),
        })
    }

    /// The counters as of now (see [`Freshness::current`]); `None` when they cannot be read,
    /// and the caller then reads the database as if there were no cache.
    pub async fn generations(&self, db: &Database) -> Option<Arc<Generations>> {
        self.fresh
            .current(|| async {
                match db.read_now(generations::read).await {
                    Ok(g) => Some(g),
                    Err(e) => {
                        log::warn!(
                            "record cache: cannot read the change counters, reading images \
                             directly: {}",
                            crate::error::chain(&e)
                        );
                        None
                    }
                }
            })
            .await
    }

    /// The JSON of an image unchanged since it was cached under `generations`, if the
    /// caller may see it; `None` when the database must be asked.
    pub fn show(
        &self,
        generations: &Generations,
        ctx: &Context,
        id: &ImageId,
    ) -> Option<bytes::Bytes> {
        let record = self.get(generations, id)?;
        record
            .visible_without_members(ctx)
            .then(|| record.json.clone())
    }

    /// The record of an image unchanged since it was cached, whoever asks (for a list page,
    /// whose query has already applied the caller's visibility).
    pub fn get(&self, generations: &Generations, id: &ImageId) -> Option<Arc<Record>> {
        let current = generations.of(id)?;
        let mut entries = self.lock();
        let record = entries.map.get(id)?;
        if record.generation == current && record.loaded.elapsed() < self.opts.max_age {
            return Some(record.clone());
        }
        entries.remove(id);
        None
    }

    /// Keeps the JSON of an image loaded after `generations` were read.
    pub fn keep(&self, generations: &Generations, image: &Image, json: bytes::Bytes) {
        self.put(generations, image.id, |generation| {
            Record::new(generation, image, false, json)
        });
    }

    /// The counters of the last read of them to finish, with no wait for a new one; `None`
    /// before the first. An image loaded now may be kept under them ([`Self::keep`]): that
    /// read started before the load, so a change committed after it moves the counter past
    /// the entry's value and the entry is never served; at worst a change to another image
    /// of the stripe makes it miss.
    pub fn last_read(&self) -> Option<Arc<Generations>> {
        self.fresh.latest()
    }

    /// Whether an unexpired entry is held for the image. Without one, a show has nothing to
    /// check against the counters, so it need not wait for a read of them: it loads the
    /// image at once and keeps it under [`Self::last_read`].
    pub fn holds(&self, id: &ImageId) -> bool {
        self.lock()
            .map
            .peek(id)
            .is_some_and(|r| r.loaded.elapsed() < self.opts.max_age)
    }

    /// Keeps the JSON of an image this registry has just created, so that the reads that
    /// usually follow a create (a client's show, glance-api's read before an upload or a
    /// delete) need not go to the database. No read of the counters is made for it: those
    /// of the last read to finish will do, because that read started before the image's
    /// INSERT, and any change to the image comes after the INSERT and so moves its counter
    /// past them. A write to another image of the same stripe in between only makes the
    /// entry miss.
    pub fn keep_created(&self, image: &Image, json: bytes::Bytes) {
        if let Some(generations) = self.fresh.latest() {
            // A new image has no members.
            self.put(&generations, image.id, |generation| {
                Record::new(generation, image, true, json)
            });
        }
    }

    /// The image as cached, with the counter it was cached under, for a change that checks
    /// that counter under the image's row lock (see `db::locked::write_cached`) and so need not
    /// check it here; `None` when there is no entry, it has expired, or the caller may not
    /// see the image by what the cache holds.
    pub fn cached(&self, ctx: &Context, id: &ImageId) -> Option<Cached> {
        let record = self.lock().map.get(id)?.clone();
        if record.loaded.elapsed() >= self.opts.max_age || !record.visible_without_members(ctx) {
            return None;
        }
        let image = serde_json::from_slice(&record.json).ok()?;
        Some(Cached {
            image,
            generation: record.generation,
            no_members: record.no_members,
        })
    }

    /// Keeps the record `make` builds from the image's stripe counter in `generations`.
    /// The least recently used entries make room.
    fn put(&self, generations: &Generations, id: ImageId, make: impl FnOnce(i64) -> Record) {
        let Some(generation) = generations.of(&id) else {
            return;
        };
        let record = make(generation);
        let size = record.size();
        if size > self.opts.max_bytes {
            return;
        }
        let mut entries = self.lock();
        entries.remove(&id);
        while entries.bytes + size > self.opts.max_bytes {
            let Some((_, victim)) = entries.map.pop_lru() else {
                break;
            };
            entries.bytes -= victim.size();
        }
        entries.bytes += size;
        entries.map.push(id, Arc::new(record));
    }

    /// Drops an image this registry has just changed (its entry would fail the next check
    /// anyway; this frees it at once).
    pub fn forget(&self, id: &ImageId) {
        self.lock().remove(id);
    }

    /// Entries and their bytes, for tests and logs.
    pub fn usage(&self) -> (usize, usize) {
        let entries = self.lock();
        (entries.map.len(), entries.bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

    use super::*;

    /// Counters whose every stripe reads `v`.
    fn all(v: i64) -> Generations {
        Generations::from_pairs((0..64).map(|s| (s, v)))
    }

    /// A stand-in for the table: the value a read sees is the one when it *starts*, and it
    /// finishes only when the test opens its gate.
    struct Table {
        value: AtomicI64,
        reads: AtomicUsize,
        gate: tokio::sync::Semaphore,
    }

    impl Table {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                value: AtomicI64::new(0),
                reads: AtomicUsize::new(0),
                gate: tokio::sync::Semaphore::new(0),
            })
        }

        async fn read(&self) -> Option<Generations> {
            let v = self.value.load(Ordering::SeqCst);
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.gate.acquire().await.ok()?.forget();
            Some(all(v))
        }
    }

    /// A request asking `fresh` for the counters, as a task of its own.
    fn ask(
        fresh: &Arc<Freshness>,
        table: &Arc<Table>,
    ) -> actix_web::rt::task::JoinHandle<Option<Arc<Generations>>> {
        let (f, t) = (fresh.clone(), table.clone());
        actix_web::rt::spawn(async move { f.current(|| t.read()).await })
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[actix_web::test]
    async fn a_request_is_answered_only_by_a_read_that_started_after_it() {
        let fresh = Arc::new(Freshness::default());
        let table = Table::new();
        let first = ask(&fresh, &table);
        settle().await;
        assert_eq!(table.reads.load(Ordering::SeqCst), 1);
        // A write commits while the first read is in flight; then two requests arrive.
        table.value.store(1, Ordering::SeqCst);
        let second = ask(&fresh, &table);
        let third = ask(&fresh, &table);
        settle().await;
        // They wait: the read in flight started before they arrived.
        assert_eq!(table.reads.load(Ordering::SeqCst), 1);
        table.gate.add_permits(1);
        let first = first.await.expect("first").expect("read");
        assert_eq!(first.of(&ImageId::new()), Some(0));
        settle().await;
        // One new read serves both, and it sees the write.
        assert_eq!(table.reads.load(Ordering::SeqCst), 2);
        table.gate.add_permits(1);
        for waiter in [second, third] {
            let got = waiter.await.expect("waiter").expect("read");
            assert_eq!(got.of(&ImageId::new()), Some(1));
        }
        assert_eq!(table.reads.load(Ordering::SeqCst), 2);
    }

    #[actix_web::test]
    async fn a_read_whose_request_went_away_hands_over_to_a_waiter() {
        let fresh = Arc::new(Freshness::default());
        let table = Table::new();
        let first = ask(&fresh, &table);
        settle().await;
        let second = ask(&fresh, &table);
        settle().await;
        first.abort();
        settle().await;
        // The waiter started a read of its own.
        assert_eq!(table.reads.load(Ordering::SeqCst), 2);
        table.gate.add_permits(1);
        assert!(second.await.expect("second").is_some());
    }

    #[actix_web::test]
    async fn a_failed_read_answers_its_waiters_with_none() {
        let fresh = Freshness::default();
        assert!(fresh.current(|| async { None }).await.is_none());
        assert_eq!(
            fresh
                .current(|| async { Some(all(4)) })
                .await
                .and_then(|g| g.of(&ImageId::new())),
            Some(4)
        );
    }

    fn cache(max_bytes: usize, max_age: Duration) -> RecordCache {
        RecordCache::new(CacheOptions { max_bytes, max_age }).expect("on")
    }

    fn record(owner: &str, visibility: Visibility, json: &str) -> impl FnOnce(i64) -> Record {
        let (owner, json) = (owner.to_string(), json.to_string());
        move |g| Record {
            generation: g,
            loaded: Instant::now(),
            owner: Some(owner),
            visibility,
            no_members: false,
            json: bytes::Bytes::from(json),
        }
    }

    fn ctx(project: &str) -> Context {
        Context {
            project_id: Some(project.to_string()),
            ..Context::default()
        }
    }

    #[test]
    fn an_entry_is_served_while_its_stripe_is_unchanged() {
        let c = cache(1 << 20, Duration::from_secs(60));
        let id = ImageId::new();
        c.put(&all(3), id, record("p", Visibility::Shared, "{}"));
        assert_eq!(c.show(&all(3), &ctx("p"), &id).as_deref(), Some(&b"{}"[..]));
        // Another stripe value: dropped, and stays dropped.
        assert!(c.show(&all(4), &ctx("p"), &id).is_none());
        assert!(c.show(&all(3), &ctx("p"), &id).is_none());
        assert_eq!(c.usage().0, 0);
    }

    #[test]
    fn visibility_is_checked_and_members_are_left_to_the_database() {
        let c = cache(1 << 20, Duration::from_secs(60));
        let (shared, public, private) = (ImageId::new(), ImageId::new(), ImageId::new());
        c.put(&all(0), shared, record("p", Visibility::Shared, "s"));
        c.put(&all(0), public, record("p", Visibility::Public, "u"));
        c.put(&all(0), private, record("p", Visibility::Private, "v"));
        assert!(c.show(&all(0), &ctx("q"), &shared).is_none());
        assert!(c.show(&all(0), &ctx("q"), &private).is_none());
        assert!(c.show(&all(0), &ctx("q"), &public).is_some());
        let admin = Context {
            is_admin: true,
            ..Context::default()
        };
        assert!(c.show(&all(0), &admin, &private).is_some());
        // A list page has applied visibility already: the record is there for it.
        assert!(c.get(&all(0), &shared).is_some());
    }

    #[test]
    fn the_size_bound_holds_and_least_recently_used_entries_make_room() {
        let json = "x".repeat(1000);
        let one = 1000 + 1 + ENTRY_OVERHEAD;
        let c = cache(10 * one, Duration::from_secs(60));
        let ids: Vec<ImageId> = (0..25).map(|_| ImageId::new()).collect();
        for id in &ids {
            c.put(&all(0), *id, record("p", Visibility::Public, &json));
            let (n, bytes) = c.usage();
            assert!(bytes <= 10 * one && n <= 10, "{n} entries, {bytes} bytes");
        }
        assert_eq!(c.usage(), (10, 10 * one));
        // The newest is always kept; one larger than the whole cache is not.
        assert!(c.get(&all(0), &ids[24]).is_some());
        let huge = ImageId::new();
        c.put(
            &all(0),
            huge,
            record("p", Visibility::Public, &"y".repeat(11 * one)),
        );
        assert!(c.get(&all(0), &huge).is_none());
    }

    #[test]
    fn the_least_recently_used_entry_is_the_one_evicted() {
        let json = "x".repeat(1000);
        let one = 1000 + 1 + ENTRY_OVERHEAD;
        let c = cache(3 * one, Duration::from_secs(60));
        let (a, b, d) = (ImageId::new(), ImageId::new(), ImageId::new());
        for id in [a, b, d] {
            c.put(&all(0), id, record("p", Visibility::Public, &json));
        }
        // `a` is the oldest entry, but a show uses it: `b` is now the least recently used.
        assert!(c.show(&all(0), &ctx("q"), &a).is_some());
        let e = ImageId::new();
        c.put(&all(0), e, record("p", Visibility::Public, &json));
        assert_eq!(c.usage(), (3, 3 * one));
        assert!(c.get(&all(0), &b).is_none(), "the least recently used went");
        for kept in [a, d, e] {
            assert!(c.get(&all(0), &kept).is_some(), "{kept} was kept");
        }
        // Those reads were uses too, in that order: `a` is now the least recently used.
        let f = ImageId::new();
        c.put(&all(0), f, record("p", Visibility::Public, &json));
        assert!(
            c.get(&all(0), &a).is_none(),
            "a was the least recently used"
        );
        for kept in [d, e, f] {
            assert!(c.get(&all(0), &kept).is_some(), "{kept} was kept");
        }
    }

    #[test]
    fn entries_expire_after_the_max_age() {
        let c = cache(1 << 20, Duration::from_millis(30));
        let id = ImageId::new();
        c.put(&all(0), id, record("p", Visibility::Public, "{}"));
        assert!(c.get(&all(0), &id).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.get(&all(0), &id).is_none());
    }

    #[test]
    fn zero_size_or_age_turns_it_off() {
        let off = |max_bytes, secs| {
            RecordCache::new(CacheOptions {
                max_bytes,
                max_age: Duration::from_secs(secs),
            })
            .is_none()
        };
        assert!(off(0, 60));
        assert!(off(1 << 20, 0));
        assert!(!off(1 << 20, 60));
    }
}
