//! The job counts of the `status` document without reading every stored status.
//!
//! The status tallies (stored statuses per job and bits) already count most tasks
//! right: a task that is one of the job's nodes, not running, and not excluded counts
//! under its stored status. Only a few nodes need a closer look, and their stored
//! statuses are read one by one (or, when they are many, in one pass over the job's
//! statuses): the nodes with stored statuses that are not tasks of the job (not, or
//! no longer, at its level), the tasks that run or whose run finished unrecorded, and
//! the tasks a disabled node or a filter excludes. Tasks with no stored status are
//! what is left of the total. [`super::build`] counts the same from every row; the
//! tests hold the two to the same answers.

use super::{
    job_report, may_run_again, orphans, selected, ReportFilter, SchedulerState, StatusReport,
};
use crate::foundation::config::{Config, Job};
use crate::foundation::status::{StatusName, TaskStatus};
use crate::model::nodes::Nodes;
use crate::storage::state::StateDir;
use crate::storage::store::{StatusRow, StatusSnapshot, StoreError, Tallies};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::BTreeMap;

/// Everything a report is read from.
pub struct CountsInput<'a> {
    /// The config in force.
    pub config: &'a Config,
    /// The nodes.
    pub nodes: &'a Nodes,
    /// One read of the status database.
    pub statuses: &'a StatusSnapshot<'a>,
    /// The state directory, for runs that finished since the last tick.
    pub state: &'a StateDir,
    /// Why the config file is unusable, if it is.
    pub config_error: Option<String>,
    /// Epoch seconds.
    pub now: i64,
}

/// How the stored statuses of the nodes that need a closer look are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    /// One lookup per node.
    Lookups,
    /// One pass over the job's stored statuses.
    Scan,
}

/// A lookup costs about this many rows of a scan.
const LOOKUP_COST: usize = 8;

impl Fetch {
    /// The cheaper way to read `wanted` statuses of a job with `stored` in all.
    fn cheaper(wanted: usize, stored: usize) -> Self {
        if wanted.saturating_mul(LOOKUP_COST) <= stored {
            Fetch::Lookups
        } else {
            Fetch::Scan
        }
    }
}

/// The report without task rows, from the tallies; None if the tallies disagree
/// with the rows (see [`StatusSnapshot::tallies`]).
pub(super) fn report(
    input: &CountsInput,
    filter: &ReportFilter,
) -> Result<Option<StatusReport>, StoreError> {
    report_with(input, filter, None)
}

/// [`report`], reading the closer-look statuses as `fetch` says (else the cheaper way).
fn report_with(
    input: &CountsInput,
    filter: &ReportFilter,
    fetch: Option<Fetch>,
) -> Result<Option<StatusReport>, StoreError> {
    let mut levels: Vec<usize> = selected(input.config, filter)
        .map(|job| job.level_for_tasks)
        .collect();
    levels.sort_unstable();
    levels.dedup();
    let stranger_at = |level: usize, node: &str| input.nodes.named(level, node).next().is_none();
    let Some(tallies) = input
        .statuses
        .tallies(|node| levels.iter().any(|&level| stranger_at(level, node)))?
    else {
        return Ok(None);
    };
    let mut running = input.statuses.running()?;
    let mut ran = Vec::new();
    for t in &running {
        ran.extend(input.statuses.row(&t.job, &t.node)?);
    }
    let started: Vec<(String, String)> = running
        .iter()
        .map(|t| (t.job.clone(), t.node.clone()))
        .collect();
    crate::usecases::tick::preview_finished(input.state, &mut ran, &mut running);
    let view = View {
        nodes: input.nodes,
        tallies: &tallies,
        running: running
            .iter()
            .map(|t| (t.job.as_str(), t.node.as_str()))
            .collect(),
        ran: ran
            .iter()
            .map(|r: &StatusRow| ((r.job.as_str(), r.node.as_str()), r.status.bits))
            .collect(),
        started: started
            .iter()
            .fold(FxHashMap::default(), |mut by_job, (job, node)| {
                by_job
                    .entry(job.as_str())
                    .or_insert_with(Vec::new)
                    .push(node.as_str());
                by_job
            }),
    };
    let mut strangers: FxHashMap<usize, Vec<&str>> = FxHashMap::default();
    let mut jobs = Vec::new();
    for job in selected(input.config, filter) {
        let level = job.level_for_tasks;
        let strangers = strangers.entry(level).or_insert_with(|| {
            tallies
                .nodes
                .iter()
                .map(String::as_str)
                .filter(|node| stranger_at(level, node))
                .collect()
        });
        let counts = view.job_counts(input.statuses, job, strangers, fetch)?;
        jobs.push(job_report(input.config, job, counts));
    }
    Ok(Some(StatusReport {
        schema_version: 1,
        now: input.now,
        scheduler: SchedulerState {
            enabled: input.config.settings.enabled,
            config_error: input.config_error.clone(),
        },
        jobs,
        tasks: None,
        orphans: orphans(input.config, input.nodes, &running),
        workers: None,
    }))
}

/// What the counts of every job are computed from.
struct View<'a> {
    nodes: &'a Nodes,
    tallies: &'a Tallies,
    /// (job, node) of the runs still running.
    running: FxHashSet<(&'a str, &'a str)>,
    /// The bits of the tasks that were running when read, with the finished runs'
    /// statuses applied (tasks with no stored status left out).
    ran: FxHashMap<(&'a str, &'a str), u32>,
    /// Per job, the nodes of the tasks that were running when read.
    started: FxHashMap<&'a str, Vec<&'a str>>,
}

impl View<'_> {
    /// A job's counts, as [`super::build`] has them. `strangers` are the nodes with
    /// stored statuses (of any job) that have no node of that name at the job's level.
    ///
    /// Tasks are known by the index of their first node (a replica's root), and
    /// marked in arrays over the node list: a job may exclude most of its tasks.
    fn job_counts(
        &self,
        statuses: &StatusSnapshot,
        job: &Job,
        strangers: &[&str],
        fetch: Option<Fetch>,
    ) -> Result<BTreeMap<&'static str, usize>, StoreError> {
        let level = job.level_for_tasks;
        let tables = self.nodes.tables();
        let task_of = |node: &str| self.nodes.named(level, node).next();
        let name_of_task = |task: usize| self.nodes.list[task].name.as_str();
        let started = self
            .started
            .get(job.name.as_str())
            .map_or(&[][..], Vec::as_slice);
        let may_be_excluded = tables.any_disabled || !job.filters.is_empty();
        let mut marks = if may_be_excluded || !started.is_empty() {
            vec![0u8; tables.levels.len()]
        } else {
            Vec::new()
        };
        let mut total = 0;
        for n in (0..tables.levels.len()).filter(|&n| tables.levels[n] as usize == level) {
            let task = tables.replica_roots[n] as usize;
            total += usize::from(task == n);
            // A replicated task is excluded only if every copy is.
            if may_be_excluded {
                let excluded = crate::scheduler::excluded_by_nodes(job, self.nodes, n);
                if task == n && excluded {
                    marks[task] |= EXCLUDED;
                } else if !excluded {
                    marks[task] &= !EXCLUDED;
                }
            }
        }
        for task in started.iter().filter_map(|node| task_of(node)) {
            marks[task] |= STARTED;
        }
        let closer: Vec<usize> = (0..marks.len()).filter(|&t| marks[t] != 0).collect();
        let tallied = self
            .tallies
            .jobs
            .get(&job.name)
            .map_or(&[][..], Vec::as_slice);
        let stored_total = tallied.iter().map(|&(_, n)| n).sum();
        let mut stored: Vec<Option<u32>> =
            vec![None; if closer.is_empty() { 0 } else { marks.len() }];
        let mut stranger_bits = Vec::new();
        match fetch.unwrap_or_else(|| Fetch::cheaper(closer.len() + strangers.len(), stored_total))
        {
            Fetch::Lookups => {
                for &task in &closer {
                    stored[task] = statuses.bits(&job.name, name_of_task(task))?;
                }
                for node in strangers {
                    stranger_bits.extend(statuses.bits(&job.name, node)?);
                }
            }
            Fetch::Scan => statuses.each_of_job(&job.name, |node, bits| match task_of(node) {
                Some(task) if marks.get(task).is_some_and(|&m| m != 0) => stored[task] = Some(bits),
                Some(_) => {}
                None => stranger_bits.push(bits),
            })?,
        }
        let mut counts: BTreeMap<&'static str, usize> =
            StatusName::ALL.iter().map(|s| (s.as_str(), 0)).collect();
        let name_of = |bits| TaskStatus::new(bits, 0).name();
        for &(bits, n) in tallied {
            *counts.entry(name_of(bits).as_str()).or_default() += n;
        }
        for bits in stranger_bits {
            *counts.entry(name_of(bits).as_str()).or_default() -= 1;
        }
        let mut excluded = 0;
        for task in closer {
            if let Some(bits) = stored[task] {
                *counts.entry(name_of(bits).as_str()).or_default() -= 1;
            }
            let key = (job.name.as_str(), name_of_task(task));
            let name = if marks[task] & STARTED != 0 && self.running.contains(&key) {
                StatusName::Running
            } else {
                (marks[task] & STARTED != 0)
                    .then(|| self.ran.get(&key).copied())
                    .flatten()
                    .or(stored[task])
                    .map_or(StatusName::NotStarted, name_of)
            };
            if name != StatusName::NotStarted {
                *counts.entry(name.as_str()).or_default() += 1;
            }
            if marks[task] & EXCLUDED != 0 && may_run_again(name) {
                excluded += 1;
            }
        }
        let counted: usize = counts.values().sum();
        counts.insert(StatusName::NotStarted.as_str(), total - counted);
        counts.insert("total", total);
        counts.insert("excluded", excluded);
        Ok(counts)
    }
}

/// A task whose every copy a disabled node or the job's filters exclude.
const EXCLUDED: u8 = 1;
/// A task that was running when read.
const STARTED: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::runner::TaskResult;
    use crate::foundation::status::{bits, BackoffDuration};
    use crate::model::task::{InvocationId, RunningTask};
    use crate::storage::store::StatusStore;
    use crate::usecases::report::{build, ReportInput};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    const HOSTS: [&str; 3] = ["h1", "h2", "h3"];
    /// Db names; one under several hosts is a replicated task.
    const DBS: [&str; 4] = ["a", "b", "c", "d"];
    /// Nodes of stored statuses: the above, and ones no node list has.
    const NODES: [&str; 9] = ["h1", "h2", "h3", "a", "b", "c", "d", "gone", "h9"];
    /// Stored statuses of every name, and odd ones (a stored `running`, overwriteable).
    const KINDS: [u32; 8] = [
        bits::DONE,
        bits::INCOMPLETE,
        bits::ERROR | bits::USES_BACKOFF,
        bits::FAILED,
        bits::ERROR,
        bits::RUNNING,
        bits::ERROR | bits::USES_BACKOFF | bits::OVERWRITEABLE,
        bits::DONE | bits::OVERWRITEABLE,
    ];

    /// A job: at the db level (else host), enabled, and an optional filter (blacklist
    /// a db, or whitelist a host).
    type JobSpec = (bool, bool, Option<(bool, usize)>);

    #[derive(Debug, Clone)]
    struct Scenario {
        /// Per host, which dbs it has, and whether it is disabled.
        hosts: Vec<([bool; 4], bool)>,
        /// A disabled db name.
        disabled_db: Option<usize>,
        jobs: Vec<JobSpec>,
        /// (job, node, kind) stored in order; job == jobs.len() is a job not in the
        /// config.
        stored: Vec<(usize, usize, usize)>,
        /// (job, node, the kind its finished run reported, if it finished).
        running: Vec<(usize, usize, Option<usize>)>,
        /// Only these jobs, if any.
        only: Vec<usize>,
    }

    fn scenario() -> impl Strategy<Value = Scenario> {
        let job = (
            any::<bool>(),
            any::<bool>(),
            proptest::option::of((any::<bool>(), 0..4usize)),
        );
        (
            proptest::collection::vec((any::<[bool; 4]>(), proptest::bool::weighted(0.2)), 1..=3),
            proptest::option::of(0..4usize),
            proptest::collection::vec(job, 1..=3),
            proptest::collection::vec((0..4usize, 0..NODES.len(), 0..KINDS.len()), 0..40),
            proptest::collection::vec(
                (
                    0..4usize,
                    0..NODES.len(),
                    proptest::option::of(0..KINDS.len()),
                ),
                0..6,
            ),
            proptest::collection::vec(0..3usize, 0..2),
        )
            .prop_map(|(hosts, disabled_db, jobs, stored, running, only)| {
                let n = jobs.len();
                Scenario {
                    hosts,
                    disabled_db,
                    stored: stored
                        .into_iter()
                        .map(|(j, node, k)| (j % (n + 1), node, k))
                        .collect(),
                    running: running
                        .into_iter()
                        .map(|(j, node, k)| (j % (n + 1), node, k))
                        .collect(),
                    only: only.into_iter().filter(|&j| j < n).collect(),
                    jobs,
                }
            })
    }

    fn job_name(j: usize) -> String {
        format!("j{j}")
    }

    impl Scenario {
        fn config(&self) -> Config {
            let mut prefs = serde_json::Map::new();
            for (h, (dbs, disabled)) in self.hosts.iter().enumerate() {
                let children: Vec<&str> = DBS
                    .iter()
                    .zip(dbs)
                    .filter(|(_, &on)| on)
                    .map(|(d, _)| *d)
                    .collect();
                prefs.insert(
                    HOSTS[h].into(),
                    json!({"children": children, "disabled": disabled}),
                );
            }
            if let Some(d) = self.disabled_db {
                prefs.insert(DBS[d].into(), json!({"disabled": true}));
            }
            let mut config = json!({"bistro_settings": {
                "enabled": true,
                "nodes": {"levels": ["host", "db"], "node_sources": [{"source": "manual", "prefs": prefs}]},
                "resources": {"instance": {"slots": {"limit": 4, "default": 1}}}}});
            for (j, &(db_level, enabled, filter)) in self.jobs.iter().enumerate() {
                let filters = match filter {
                    None => json!({}),
                    Some((true, d)) => json!({"db": {"blacklist": [DBS[d]]}}),
                    Some((false, h)) => json!({"host": {"whitelist": [HOSTS[h % 3]]}}),
                };
                config[format!("bistro_job->{}", job_name(j))] = json!({
                    "owner": "o", "enabled": enabled, "filters": filters,
                    "level_for_tasks": if db_level { "db" } else { "host" }});
            }
            Config::from_value_unchecked(&config).unwrap()
        }

        /// Fills the status database of `state` (and result files of finished runs).
        fn store(&self, state: &StateDir) -> StatusStore {
            let mut store = StatusStore::open(&state.statuses_db()).unwrap();
            let run = |job: usize, node: usize, rand: u64| RunningTask {
                job: job_name(job),
                node: NODES[node].into(),
                invocation: InvocationId {
                    start_time: 900,
                    rand,
                },
                charges: Vec::new(),
                next_backoff: BackoffDuration::new(15),
                attempts: rand as i64 % 3 + 1,
                worker_shard: "local".into(),
                timeout_sec: None,
            };
            for (i, &(job, node, kind)) in self.stored.iter().enumerate() {
                let task = run(job, node, i as u64);
                let mut status = TaskStatus::new(KINDS[kind], 990 - i as i64 * 3);
                status.backoff = 5 * (i as i64 % 4);
                store.claim(std::slice::from_ref(&task)).unwrap();
                store.finish(&[(task, Some(status))]).unwrap();
            }
            for (i, &(job, node, finished)) in self.running.iter().enumerate() {
                let task = run(job, node, 100 + i as u64);
                if store.claim(std::slice::from_ref(&task)).is_err() {
                    continue;
                }
                if let Some(kind) = finished {
                    let dir = state.invocation_dir(task.invocation);
                    std::fs::create_dir_all(&dir).unwrap();
                    let result = TaskResult {
                        status: TaskStatus::new(KINDS[kind], 995),
                        exit: "exited with status 0".into(),
                        killed: false,
                        stop_signal: None,
                        end_time: 995,
                    };
                    std::fs::write(
                        dir.join(crate::storage::state::run_dir::RESULT),
                        serde_json::to_string(&result).unwrap(),
                    )
                    .unwrap();
                }
            }
            store
        }

        fn filter(&self) -> ReportFilter {
            ReportFilter {
                jobs: self.only.iter().map(|&j| job_name(j)).collect(),
                ..ReportFilter::default()
            }
        }
    }

    /// The report counted from every row, as [`build`] has it.
    fn from_rows(input: &CountsInput, filter: &ReportFilter) -> Value {
        let mut rows = input.statuses.load().unwrap();
        let mut running = input.statuses.running().unwrap();
        crate::usecases::tick::preview_finished(input.state, &mut rows, &mut running);
        let report = build(
            &ReportInput {
                config: input.config,
                nodes: input.nodes,
                rows: &rows,
                running: &running,
                config_error: None,
                now: input.now,
            },
            filter,
        );
        serde_json::to_value(report).unwrap()
    }

    /// The report from the tallies, reading the statuses as `fetch` says.
    fn from_tallies(input: &CountsInput, filter: &ReportFilter, fetch: Option<Fetch>) -> Value {
        serde_json::to_value(report_with(input, filter, fetch).unwrap().unwrap()).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn the_tallies_count_what_the_rows_count(s in scenario()) {
            let dir = tempfile::tempdir().unwrap();
            let state = StateDir::new(dir.path());
            std::fs::create_dir_all(state.running_dir()).unwrap();
            let store = s.store(&state);
            let config = s.config();
            let nodes = crate::model::nodes::fetch_nodes(&config.settings, "inst").unwrap();
            let statuses = store.snapshot().unwrap();
            let input = CountsInput {
                config: &config,
                nodes: &nodes,
                statuses: &statuses,
                state: &state,
                config_error: None,
                now: 1000,
            };
            let filter = s.filter();
            let expected = from_rows(&input, &filter);
            for fetch in [None, Some(Fetch::Lookups), Some(Fetch::Scan)] {
                prop_assert_eq!(&from_tallies(&input, &filter, fetch), &expected, "{:?}", fetch);
            }
        }
    }

    #[test]
    fn the_cheaper_fetch_looks_up_few_statuses_and_scans_for_many() {
        assert_eq!(Fetch::cheaper(0, 0), Fetch::Lookups);
        assert_eq!(Fetch::cheaper(10, 1_000_000), Fetch::Lookups);
        assert_eq!(Fetch::cheaper(10, 10), Fetch::Scan);
    }

    #[test]
    fn tallies_that_disagree_with_the_rows_give_no_report() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let s = Scenario {
            hosts: vec![([true; 4], false)],
            disabled_db: None,
            jobs: vec![(true, true, None)],
            stored: vec![(0, 3, 0)],
            running: Vec::new(),
            only: Vec::new(),
        };
        let store = s.store(&state);
        rusqlite::Connection::open(state.statuses_db())
            .unwrap()
            .execute("INSERT OR REPLACE INTO task_statuses (job, node, bits, time) VALUES ('j0', 'a', 8, 1)", [])
            .unwrap();
        let config = s.config();
        let nodes = crate::model::nodes::fetch_nodes(&config.settings, "inst").unwrap();
        let statuses = store.snapshot().unwrap();
        let input = CountsInput {
            config: &config,
            nodes: &nodes,
            statuses: &statuses,
            state: &state,
            config_error: None,
            now: 1000,
        };
        assert!(report(&input, &ReportFilter::default()).unwrap().is_none());
        let read =
            serde_json::to_value(super::super::read(&input, &ReportFilter::default()).unwrap())
                .unwrap();
        assert_eq!(read, from_rows(&input, &ReportFilter::default()));
        assert_eq!(read["jobs"][0]["counts"]["incomplete"], 1);
    }
}
