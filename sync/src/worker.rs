//! The sync worker: when to run a round, and what the last ones did.
//!
//! Owns the schedule (a timer, a debounce after local writes, a quick pull
//! when the hub announces a push, capped exponential backoff with jitter
//! after failures) as a pure state machine,
//! [`Worker`], that a caller drives with the time and events; and the
//! visible health of sync, [`SyncStatus`]. [`run`] is the small async loop
//! the agent's `serve` runs; it is generic over the clock, the sleep and the
//! command channel, so this crate needs no runtime. The worker never reads a
//! clock or sleeps by itself, and never blocks a tool call: tools only send
//! it [`Command`]s.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};

use crate::protocol::{Hub, Replica};
use crate::round::{RoundReport, SyncError, SyncOptions, sync_round};

/// Capped exponential backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// The delay after the first failure (before jitter).
    pub base: Duration,
    /// The longest delay between two attempts.
    pub cap: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

/// The delay before attempt `attempt + 1` after `attempt` consecutive
/// failures (`attempt >= 1`): `base * 2^(attempt-1)`, capped, then jittered
/// into its upper half (`[d/2, d]`), so a fleet of replicas that lost the hub
/// together does not come back in lockstep, and no retry comes sooner than
/// half the nominal delay. `jitter` yields uniformly random `u64`s.
pub fn next_delay(policy: BackoffPolicy, attempt: u32, jitter: &mut impl FnMut() -> u64) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
    let nominal = policy.base.saturating_mul(factor).min(policy.cap);
    let half = nominal / 2;
    let spread = u64::try_from((nominal - half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(jitter() % spread.saturating_add(1))
}

/// When the worker syncs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Sync at least this often (`WAYMARK_SYNC_INTERVAL`, default 30 s).
    pub interval: Duration,
    /// Sync this long after the last local write.
    pub debounce: Duration,
    /// ... but no later than this after the first write not yet synced, so
    /// a steady stream of writes cannot postpone sync forever.
    pub debounce_max: Duration,
    /// Pull this long after the hub announced a push this replica has not
    /// pulled yet ([`Worker::on_hub_changed`]), so the pushes of several
    /// writers arriving together make one round.
    pub wake_debounce: Duration,
    pub backoff: BackoffPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            interval: Duration::from_secs(30),
            debounce: Duration::from_millis(500),
            debounce_max: Duration::from_secs(5),
            wake_debounce: Duration::from_millis(20),
            backoff: BackoffPolicy::default(),
        }
    }
}

/// What the worker is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerState {
    /// Waiting for the timer or a local write.
    Idle,
    /// A round is running.
    Syncing,
    /// The last `attempt` rounds failed; the next runs at `until` (or when
    /// someone asks for a sync explicitly).
    Backoff { attempt: u32, until: Instant },
}

/// What the driver should do after [`Worker::on_tick`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tick {
    /// Run a round now, then report it with [`Worker::on_result`].
    Sync,
    /// Nothing is due before this instant (a local write may make it sooner).
    WaitUntil(Instant),
    /// A round is already running.
    Busy,
}

/// The health of sync, as tools and the status report show it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncStatus {
    pub last_success_at: Option<SystemTime>,
    pub last_attempt_at: Option<SystemTime>,
    /// The last failure's message, cleared by a success. Hub errors never
    /// carry credentials (the hub implementations redact them).
    pub last_error: Option<String>,
    /// `None` until a round has talked to the hub.
    pub hub_reachable: Option<bool>,
    pub consecutive_failures: u32,
    pub last_report: Option<RoundReport>,
}

/// The worker's schedule: a pure state machine, driven by the caller with
/// the current time.
#[derive(Clone, Debug)]
pub struct Worker {
    config: WorkerConfig,
    state: WorkerState,
    status: SyncStatus,
    /// When the timer next fires.
    next_periodic: Instant,
    /// The last and the first local write not yet covered by a round.
    last_write: Option<Instant>,
    first_write: Option<Instant>,
    /// Someone asked for a sync now.
    requested: bool,
    /// When the hub first announced a push not yet pulled.
    hub_changed: Option<Instant>,
    /// The cursor after the last successful round: announcements of heads
    /// at or below it are this replica's own pushes, or already pulled.
    cursor: u64,
    rng: u64,
}

impl Worker {
    /// A worker that syncs at once (`now`), then on its schedule. `seed`
    /// feeds the jitter (any value; the replica id's bits are a good one).
    pub fn new(config: WorkerConfig, now: Instant, seed: u64) -> Worker {
        Worker {
            config,
            state: WorkerState::Idle,
            status: SyncStatus::default(),
            next_periodic: now,
            last_write: None,
            first_write: None,
            requested: false,
            hub_changed: None,
            cursor: 0,
            rng: seed,
        }
    }

    pub fn state(&self) -> WorkerState {
        self.state
    }

    pub fn status(&self) -> &SyncStatus {
        &self.status
    }

    /// A tool wrote locally: sync soon, once writes pause.
    pub fn on_local_write(&mut self, now: Instant) {
        self.last_write = Some(now);
        self.first_write.get_or_insert(now);
    }

    /// The hub announced a push to the space, with its new head when it
    /// said (`None`: unknown, as after the announcements were missed): pull
    /// soon ([`WorkerConfig::wake_debounce`]) unless this replica already
    /// has that head. It does not cut a backoff short.
    pub fn on_hub_changed(&mut self, now: Instant, head: Option<u64>) {
        if head.is_some_and(|head| head <= self.cursor) {
            return;
        }
        self.hub_changed.get_or_insert(now);
    }

    /// Someone asked for a round now (`sync now`): it runs at the next
    /// tick, even during backoff.
    pub fn on_sync_requested(&mut self) {
        self.requested = true;
    }

    /// When the next round is due; `None` while one runs.
    pub fn deadline(&self) -> Option<Instant> {
        match self.state {
            WorkerState::Syncing => None,
            WorkerState::Backoff { until, .. } => Some(until),
            WorkerState::Idle => Some(
                [
                    self.due_after_writes(),
                    self.hub_changed.map(|at| at + self.config.wake_debounce),
                ]
                .into_iter()
                .flatten()
                .fold(self.next_periodic, Instant::min),
            ),
        }
    }

    /// The time has come to check the schedule: start a round if one is due.
    pub fn on_tick(&mut self, now: Instant) -> Tick {
        if self.state == WorkerState::Syncing {
            return Tick::Busy;
        }
        let due = self.requested || self.deadline().is_some_and(|d| d <= now);
        if !due {
            return self.deadline().map_or(Tick::Busy, Tick::WaitUntil);
        }
        // The round pushes the whole outbox and pulls the whole log, so it
        // covers every write and announcement so far.
        self.requested = false;
        self.last_write = None;
        self.first_write = None;
        self.hub_changed = None;
        self.state = WorkerState::Syncing;
        Tick::Sync
    }

    /// A round ended, at `now` (monotonic) and `at` (wall time, shown to users).
    pub fn on_result(&mut self, now: Instant, at: SystemTime, result: &Result<RoundReport, SyncError>) {
        self.status.last_attempt_at = Some(at);
        self.next_periodic = now + self.config.interval;
        match result {
            Ok(report) => {
                self.state = WorkerState::Idle;
                self.status.last_success_at = Some(at);
                self.status.last_error = None;
                self.status.hub_reachable = Some(true);
                self.status.consecutive_failures = 0;
                self.status.last_report = Some(*report);
                self.cursor = report.cursor;
            }
            Err(error) => {
                let attempt = self.status.consecutive_failures.saturating_add(1);
                self.status.consecutive_failures = attempt;
                self.status.last_error = Some(error.to_string());
                match error {
                    SyncError::Hub(_)
                    | SyncError::HubLostChanges { .. }
                    | SyncError::LogReset { .. }
                    | SyncError::LogRewritten { .. }
                    | SyncError::Protocol(_) => {
                        self.status.hub_reachable = Some(!error.is_unreachable());
                    }
                    SyncError::Replica(_) => {}
                }
                // A retryable failure backs off exponentially; one that will
                // not heal by itself is retried at the slowest pace.
                let delay = if error.is_retryable() {
                    let rng = &mut self.rng;
                    next_delay(self.config.backoff, attempt, &mut || splitmix64(rng))
                } else {
                    self.config.backoff.cap
                };
                self.state = WorkerState::Backoff {
                    attempt,
                    until: now + delay,
                };
            }
        }
    }

    fn due_after_writes(&self) -> Option<Instant> {
        let last = self.last_write?;
        let first = self.first_write.unwrap_or(last);
        Some((last + self.config.debounce).min(first + self.config.debounce_max))
    }
}

/// A small, good-enough generator for jitter (SplitMix64).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What tools tell the running worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// A local write committed.
    LocalWrite,
    /// The hub announced a push to the space (with its new head, when
    /// known): see [`Worker::on_hub_changed`].
    HubChanged(Option<u64>),
    /// Run a round now.
    SyncNow,
    /// Finish and return.
    Stop,
}

/// The runtime the worker loop runs on: time and sleeping (the agent
/// implements it over tokio).
pub trait Runtime {
    fn now(&self) -> Instant;
    fn wall_time(&self) -> SystemTime;
    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send;
}

/// Where the worker loop receives [`Command`]s. `recv` must be cancel-safe
/// (dropping its future loses no command), like tokio's `mpsc::Receiver::recv`;
/// `None` means every sender is gone, and the loop ends.
pub trait Commands {
    fn recv(&mut self) -> impl Future<Output = Option<Command>> + Send;
}

/// The worker loop: wait for the schedule or a command, run rounds, publish
/// the status after each. Returns on [`Command::Stop`] or when the command
/// channel closes. Commands sent during a round are handled after it.
#[allow(clippy::too_many_arguments)]
pub async fn run<R: Replica, H: Hub, T: Runtime, C: Commands>(
    mut worker: Worker,
    replica: &R,
    hub: &H,
    space: &str,
    opts: SyncOptions,
    runtime: &T,
    commands: &mut C,
    mut publish: impl FnMut(&SyncStatus),
) {
    loop {
        match worker.on_tick(runtime.now()) {
            Tick::Sync => {
                let result = sync_round(replica, hub, space, opts).await;
                worker.on_result(runtime.now(), runtime.wall_time(), &result);
                publish(worker.status());
            }
            Tick::WaitUntil(deadline) => {
                let woke = {
                    let mut sleep = pin!(runtime.sleep_until(deadline));
                    let mut recv = pin!(commands.recv());
                    poll_fn(|cx| {
                        if let Poll::Ready(command) = recv.as_mut().poll(cx) {
                            return Poll::Ready(Some(command));
                        }
                        sleep.as_mut().poll(cx).map(|()| None)
                    })
                    .await
                };
                match woke {
                    None => {}
                    Some(None) | Some(Some(Command::Stop)) => return,
                    Some(Some(Command::LocalWrite)) => worker.on_local_write(runtime.now()),
                    Some(Some(Command::HubChanged(head))) => worker.on_hub_changed(runtime.now(), head),
                    Some(Some(Command::SyncNow)) => worker.on_sync_requested(),
                }
            }
            Tick::Busy => unreachable!("the loop runs one round at a time"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::Mutex;

    use super::*;
    use crate::memory::{Fault, MemoryHub, MemoryReplica};
    use crate::protocol::HubError;
    use crate::testing::block_on;
    use crate::{Replica, ReplicaId};

    const MS: Duration = Duration::from_millis(1);

    fn ok() -> Result<RoundReport, SyncError> {
        Ok(RoundReport::default())
    }

    fn unreachable() -> Result<RoundReport, SyncError> {
        Err(SyncError::Hub(HubError::Unreachable("connection refused".into())))
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitters_in_the_upper_half() {
        let policy = BackoffPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        };
        let (mut low, mut high) = (|| 0u64, || u64::MAX - 1);
        for (attempt, nominal) in [(1, 1), (2, 2), (3, 4), (6, 32), (7, 60), (40, 60), (u32::MAX, 60)] {
            let nominal = Duration::from_secs(nominal);
            assert_eq!(next_delay(policy, attempt, &mut low), nominal / 2, "attempt {attempt}");
            let top = next_delay(policy, attempt, &mut high);
            assert!(top > nominal / 2 && top <= nominal, "attempt {attempt}: {top:?}");
        }
        let mut state = 7;
        for _ in 0..1000 {
            let d = next_delay(policy, 3, &mut || splitmix64(&mut state));
            assert!(d >= Duration::from_secs(2) && d <= Duration::from_secs(4));
        }
    }

    #[test]
    fn a_new_worker_syncs_at_once_then_on_the_timer() {
        let t0 = Instant::now();
        let mut worker = Worker::new(WorkerConfig::default(), t0, 1);
        assert_eq!(worker.on_tick(t0), Tick::Sync);
        assert_eq!(worker.state(), WorkerState::Syncing);
        assert_eq!(worker.on_tick(t0), Tick::Busy);
        worker.on_result(t0 + 10 * MS, SystemTime::UNIX_EPOCH, &ok());
        assert_eq!(worker.state(), WorkerState::Idle);
        let next = t0 + 10 * MS + Duration::from_secs(30);
        assert_eq!(worker.on_tick(t0 + Duration::from_secs(1)), Tick::WaitUntil(next));
        assert_eq!(worker.on_tick(next), Tick::Sync);
    }

    #[test]
    fn local_writes_sync_soon_after_they_pause() {
        let t0 = Instant::now();
        let mut worker = Worker::new(WorkerConfig::default(), t0, 1);
        worker.on_tick(t0);
        worker.on_result(t0, SystemTime::UNIX_EPOCH, &ok());
        worker.on_local_write(t0 + 100 * MS);
        assert_eq!(worker.on_tick(t0 + 400 * MS), Tick::WaitUntil(t0 + 600 * MS));
        worker.on_local_write(t0 + 400 * MS);
        assert_eq!(worker.on_tick(t0 + 600 * MS), Tick::WaitUntil(t0 + 900 * MS));
        assert_eq!(worker.on_tick(t0 + 900 * MS), Tick::Sync);
    }

    #[test]
    fn a_stream_of_writes_cannot_postpone_sync_forever() {
        let t0 = Instant::now();
        let mut worker = Worker::new(WorkerConfig::default(), t0, 1);
        worker.on_tick(t0);
        worker.on_result(t0, SystemTime::UNIX_EPOCH, &ok());
        let mut now = t0;
        while worker.on_tick(now) != Tick::Sync {
            worker.on_local_write(now);
            now += 300 * MS;
        }
        assert_eq!(
            now,
            t0 + Duration::from_millis(5100),
            "debounce_max after the first write"
        );
    }

    #[test]
    fn an_announced_push_is_pulled_at_once_unless_already_here() {
        let t0 = Instant::now();
        let mut worker = Worker::new(WorkerConfig::default(), t0, 1);
        worker.on_tick(t0);
        let report = RoundReport {
            cursor: 7,
            ..RoundReport::default()
        };
        worker.on_result(t0, SystemTime::UNIX_EPOCH, &Ok(report));
        // This replica's own push (or one it already pulled): no round.
        worker.on_hub_changed(t0 + MS, Some(7));
        assert_eq!(
            worker.on_tick(t0 + 2 * MS),
            Tick::WaitUntil(t0 + Duration::from_secs(30))
        );
        // Another's: a round after the short debounce, which a second
        // announcement does not push back.
        worker.on_hub_changed(t0 + 10 * MS, Some(8));
        worker.on_hub_changed(t0 + 25 * MS, Some(9));
        assert_eq!(worker.on_tick(t0 + 20 * MS), Tick::WaitUntil(t0 + 30 * MS));
        assert_eq!(worker.on_tick(t0 + 30 * MS), Tick::Sync);
        worker.on_result(
            t0 + 40 * MS,
            SystemTime::UNIX_EPOCH,
            &Ok(RoundReport { cursor: 9, ..report }),
        );
        assert_eq!(
            worker.on_tick(t0 + 41 * MS),
            Tick::WaitUntil(t0 + 40 * MS + Duration::from_secs(30))
        );
        // A head unknown (announcements were missed): a round.
        worker.on_hub_changed(t0 + 50 * MS, None);
        assert_eq!(worker.on_tick(t0 + 70 * MS), Tick::Sync);
        // No shortcut through a backoff.
        worker.on_result(t0 + 80 * MS, SystemTime::UNIX_EPOCH, &unreachable());
        let WorkerState::Backoff { until, .. } = worker.state() else {
            panic!("not backing off")
        };
        worker.on_hub_changed(t0 + 90 * MS, Some(10));
        assert_eq!(worker.on_tick(t0 + 200 * MS), Tick::WaitUntil(until));
    }

    #[test]
    fn writes_during_a_round_get_a_round_of_their_own() {
        let t0 = Instant::now();
        let mut worker = Worker::new(WorkerConfig::default(), t0, 1);
        assert_eq!(worker.on_tick(t0), Tick::Sync);
        worker.on_local_write(t0 + MS);
        worker.on_result(t0 + 2 * MS, SystemTime::UNIX_EPOCH, &ok());
        assert_eq!(worker.on_tick(t0 + 2 * MS), Tick::WaitUntil(t0 + 501 * MS));
    }

    #[test]
    fn failures_back_off_until_a_success_and_a_request_cuts_the_wait() {
        let t0 = Instant::now();
        let mut worker = Worker::new(WorkerConfig::default(), t0, 42);
        let mut now = t0;
        let mut waits = Vec::new();
        for attempt in 1..=4 {
            assert_eq!(worker.on_tick(now), Tick::Sync);
            worker.on_result(now, SystemTime::UNIX_EPOCH, &unreachable());
            let WorkerState::Backoff { attempt: a, until } = worker.state() else {
                panic!("not backing off")
            };
            assert_eq!(a, attempt);
            worker.on_local_write(now);
            assert_eq!(
                worker.on_tick(now + 600 * MS),
                Tick::WaitUntil(until),
                "writes do not hammer a down hub"
            );
            waits.push(until - now);
            now = until;
        }
        assert!(waits.windows(2).all(|w| w[1] > w[0]), "{waits:?}");
        let status = worker.status().clone();
        assert_eq!((status.consecutive_failures, status.hub_reachable), (4, Some(false)));
        assert!(status.last_error.unwrap().contains("connection refused"));

        assert_eq!(worker.on_tick(now), Tick::Sync);
        worker.on_result(now, SystemTime::UNIX_EPOCH, &unreachable());
        worker.on_sync_requested();
        assert_eq!(worker.on_tick(now + MS), Tick::Sync, "sync now overrides the backoff");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(99);
        worker.on_result(now + 2 * MS, at, &ok());
        let status = worker.status();
        assert_eq!(
            (
                status.consecutive_failures,
                status.hub_reachable,
                status.last_success_at
            ),
            (0, Some(true), Some(at))
        );
        assert!(status.last_error.is_none());
    }

    #[test]
    fn a_failure_that_cannot_heal_by_itself_retries_at_the_slowest_pace() {
        let t0 = Instant::now();
        let mut worker = Worker::new(WorkerConfig::default(), t0, 1);
        worker.on_tick(t0);
        let refused = HubError::DuplicateReplica {
            replica: ReplicaId::mint(),
            counter: 3,
        };
        worker.on_result(t0, SystemTime::UNIX_EPOCH, &Err(SyncError::Hub(refused)));
        assert_eq!(
            worker.state(),
            WorkerState::Backoff {
                attempt: 1,
                until: t0 + Duration::from_secs(300)
            }
        );
        assert_eq!(worker.status().hub_reachable, Some(true));
    }

    /// A runtime whose sleeps, once polled, return at once and move its clock forward.
    struct FakeRuntime {
        start: Instant,
        elapsed: Mutex<Duration>,
    }

    impl Runtime for FakeRuntime {
        fn now(&self) -> Instant {
            self.start + *self.elapsed.lock().unwrap()
        }
        fn wall_time(&self) -> SystemTime {
            SystemTime::UNIX_EPOCH + *self.elapsed.lock().unwrap()
        }
        async fn sleep_until(&self, deadline: Instant) {
            let mut elapsed = self.elapsed.lock().unwrap();
            *elapsed = (*elapsed).max(deadline - self.start);
        }
    }

    struct Script(VecDeque<Command>);

    impl Commands for Script {
        fn recv(&mut self) -> impl Future<Output = Option<Command>> + Send {
            std::future::ready(self.0.pop_front())
        }
    }

    #[test]
    fn the_loop_syncs_writes_and_stops_when_asked() {
        let hub = MemoryHub::new();
        let replica = MemoryReplica::new(ReplicaId::mint());
        let runtime = FakeRuntime {
            start: Instant::now(),
            elapsed: Mutex::new(Duration::ZERO),
        };
        hub.inject(0, Fault::FailBeforeCommit);
        replica.write("items", "r", BTreeMap::from([("title".to_owned(), "t".into())]), 1);
        let mut commands = Script(VecDeque::from([Command::LocalWrite, Command::SyncNow, Command::Stop]));
        let mut published = Vec::new();
        let worker = Worker::new(WorkerConfig::default(), runtime.now(), 1);
        block_on(run(
            worker,
            &replica,
            &hub,
            "team",
            SyncOptions::default(),
            &runtime,
            &mut commands,
            |s| published.push(s.clone()),
        ));
        assert_eq!(
            published.len(),
            2,
            "the first round failed, the requested one succeeded"
        );
        assert_eq!(published[0].consecutive_failures, 1);
        assert!(published[1].last_error.is_none());
        assert_eq!(replica.outbox(10).unwrap().len(), 0);
        assert_eq!(hub.log("team").len(), 1);
    }
}
