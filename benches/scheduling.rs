//! In-memory benchmarks: one scheduling pass ([`bistro::scheduler::plan`]) over the
//! performance guide's problem (10,000 hosts x 100 dbs x 5 jobs, host and db limits,
//! nothing running; also with half the tasks done, and on a node list never used
//! before), and status-line parsing.
//!
//! `cargo bench --bench scheduling`; `BISTRO_BENCH_SMOKE=1` shrinks the problem to
//! 100 hosts so CI can check the benchmarks still run (`cargo bench -- --test`).

use bistro::foundation::config::Config;
use bistro::foundation::status::{bits, parse_status, TaskStatus};
use bistro::model::nodes::Nodes;
use bistro::scheduler::{plan, PassInput, Statuses};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;
use std::time::Duration;

const JOBS: usize = 5;
const DBS_PER_HOST: usize = 100;

fn hosts() -> usize {
    if std::env::var_os("BISTRO_BENCH_SMOKE").is_some() {
        100
    } else {
        10_000
    }
}

/// Five jobs over host -> db levels, with a host and a db limit.
fn config() -> Config {
    let mut v = json!({
        "bistro_settings": {
            "enabled": true,
            "nodes": {"levels": ["host", "db"], "node_sources": []},
            "resources": {
                "host": {"host_concurrency": {"limit": 2, "default": 1}},
                "db": {"db_concurrency": {"limit": 1, "default": 1}}
            }
        }
    });
    for j in 0..JOBS {
        v[format!("bistro_job->job{j}")] = json!({"owner": "bench"});
    }
    Config::from_value_unchecked(&v).expect("a valid config")
}

/// `hosts` hosts of 100 dbs each under the instance node.
fn node_list(hosts: usize) -> Nodes {
    let mut nodes = Nodes::with_instance("instance");
    for h in 0..hosts {
        let host = nodes.push(format!("host{h}"), 1, 0, true);
        for d in 0..DBS_PER_HOST {
            nodes.push(format!("host{h}.db{d}"), 2, host, true);
        }
    }
    nodes
}

/// Every other db of every job done.
fn half_done(config: &Config, nodes: &Nodes) -> Statuses {
    let mut statuses = Statuses::default();
    for job in &config.jobs {
        for node in nodes.list.iter().filter(|n| n.level == 2).step_by(2) {
            statuses.insert(&job.name, &node.name, TaskStatus::new(bits::DONE, 1), 1);
        }
    }
    statuses
}

fn pass(c: &mut Criterion) {
    let config = config();
    let nodes = node_list(hosts());
    let leaves = nodes.list.iter().filter(|n| n.level == 2).count();
    let none = Statuses::default();
    let half = half_done(&config, &nodes);
    let mut group = c.benchmark_group("pass");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (name, statuses) in [("nothing_done", &none), ("half_done", &half)] {
        let input = PassInput {
            config: &config,
            nodes: &nodes,
            statuses,
            running: &[],
            now: 1000,
        };
        let mut rng = StdRng::seed_from_u64(1);
        group.bench_function(format!("{leaves}_leaves_x{JOBS}_jobs/{name}"), |b| {
            b.iter_batched(
                || (),
                |()| plan(black_box(&input), &mut rng, false),
                BatchSize::PerIteration,
            )
        });
    }
    // A node list's first pass also indexes its names (a daemon reuses the list, and
    // so the index, until the nodes are fetched again).
    group.bench_function(format!("{leaves}_leaves_x{JOBS}_jobs/fresh_nodes"), |b| {
        let mut rng = StdRng::seed_from_u64(1);
        b.iter_batched(
            || node_list(hosts()),
            |nodes| {
                let input = PassInput {
                    config: &config,
                    nodes: &nodes,
                    statuses: &none,
                    running: &[],
                    now: 1000,
                };
                let plan = plan(black_box(&input), &mut rng, false);
                (plan, nodes)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn status_parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_status");
    for (name, line) in [
        ("label", "done"),
        (
            "json",
            r#"{"result": "error_backoff", "data": {"exception": "disk full", "retries": 3}}"#,
        ),
        ("garbage", "not a status at all"),
    ] {
        group.bench_function(name, |b| b.iter(|| parse_status(black_box(line), 1)));
    }
    group.finish();
}

criterion_group!(benches, pass, status_parsing);
criterion_main!(benches);
