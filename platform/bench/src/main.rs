//! `kiln-bench`: Kiln's figures measured side by side with their baselines.
//!
//! - `warm`: invocations through a running kilnd vs the same function called directly on
//!   its runtime socket (no front door, auth, registry or pool);
//! - `cold`: first invocations of fresh functions vs raw youki create+start of the same bundle;
//! - `images`: uploading image archives (rate, kilnd's memory meanwhile), cold invocations
//!   of an image function vs raw youki create+start of the same image root, and warm
//!   invocations of the Python example vs its handler as a plain process;
//! - `rss`: resident memory of kilnd and its sandbox process;
//! - `checkpoints`: durable checkpoint round trips and rate;
//! - `sleepers`: many sleeping instances with spread wake times (their wake-ups are read
//!   from PostgreSQL by `scripts/bench.sh`);
//! - `stream`: streamed responses: chunk delivery lag and kilnd's memory under a 1 GiB stream;
//! - `events`: WebSocket live-event subscribers over many tenants while invocations run:
//!   delivery lag and kilnd's memory per subscriber;
//! - `outage`: warm calls while kilnd's PostgreSQL is stopped, then frozen (commands given);
//! - `load`: warm calls through kilnd and nothing else, for `perf` to record kilnd meanwhile;
//! - `flame`: a flame graph of `perf script` output, with tables of the top frames and of the
//!   share of samples in each part of kilnd (front door, runtime API, allocator, kernel...).
//!
//! Run through `scripts/bench.sh`, which builds everything and starts kilnd.

mod cold;
mod direct;
mod durable;
mod events;
mod flame;
mod images;
mod kiln_client;
mod outage;
mod stats;
mod stream;
mod synthetic_image;
mod warm;

use anyhow::{Context, bail};

const USAGE: &str = "usage:
  kiln-bench warm --url URL --token JWT --tenant T --testbed PATH [--requests N] [--concurrency C] [--seconds S]
  kiln-bench load --url URL --token JWT --tenant T --testbed PATH [--concurrency C] [--seconds S]
  kiln-bench flame --perf-script FILE --folded FILE --svg FILE [--title T] [--top N]
  kiln-bench cold --url URL --token JWT --tenant T --testbed PATH --kilnd PATH [--runs N]
  kiln-bench images --url URL --token JWT --tenant T --upload-image ARCHIVE --cold-image ARCHIVE --python-handler FILE --python-sdk DIR --kilnd PATH --pid KILND_PID [--synthetic-mb 100,500] [--runs N] [--requests N]
  kiln-bench outage --url URL --token JWT --tenant T --testbed PATH --stop CMD --start CMD --freeze CMD --thaw CMD [--concurrency C] [--seconds S]
  kiln-bench stream --url URL --token JWT --tenant T --testbed PATH --pid KILND_PID [--runs N] [--mib M]
  kiln-bench events --url URL --tenants-file FILE --testbed PATH --pid KILND_PID [--subscribers N] [--rate R] [--seconds S]
  kiln-bench rss --pid PID
  kiln-bench checkpoints --url URL --token JWT --tenant T --testbed PATH [--instances C] [--count N]
  kiln-bench sleepers --url URL --token JWT --tenant T --testbed PATH --pid KILND_PID [--count N] [--concurrency C] [--lead-seconds S] [--spread-seconds S]";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, flags) = args.split_first().context(USAGE)?;
    let flag = |name: &str| -> Option<String> {
        flags
            .iter()
            .position(|arg| arg == name)
            .and_then(|index| flags.get(index + 1))
            .cloned()
    };
    let required = |name: &str| flag(name).with_context(|| format!("{name} is required\n{USAGE}"));
    let number = |name: &str, default: usize| -> anyhow::Result<usize> {
        flag(name)
            .map(|value| value.parse().with_context(|| format!("{name} must be a number")))
            .unwrap_or(Ok(default))
    };
    match command.as_str() {
        "warm" => {
            let target =
                kiln_client::KilnTarget::new(required("--url")?, required("--token")?, required("--tenant")?);
            let settings = warm::WarmSettings {
                requests: number("--requests", 5_000)?,
                concurrency: number("--concurrency", 4)?,
                seconds: number("--seconds", 10)? as u64,
            };
            warm::run(&target, required("--testbed")?.as_ref(), &settings).await
        }
        "load" => {
            let target =
                kiln_client::KilnTarget::new(required("--url")?, required("--token")?, required("--tenant")?);
            warm::load(
                &target,
                required("--testbed")?.as_ref(),
                number("--concurrency", 4)?,
                number("--seconds", 10)? as u64,
            )
            .await
        }
        "flame" => {
            let (perf_script, folded, svg) = (
                required("--perf-script")?,
                required("--folded")?,
                required("--svg")?,
            );
            let title = flag("--title").unwrap_or_else(|| "kilnd, warm invocations".to_owned());
            flame::run(
                perf_script.as_ref(),
                folded.as_ref(),
                svg.as_ref(),
                &title,
                number("--top", 15)?,
            )
        }
        "cold" => {
            let target =
                kiln_client::KilnTarget::new(required("--url")?, required("--token")?, required("--tenant")?);
            let testbed = required("--testbed")?;
            let kilnd = required("--kilnd")?;
            cold::run(&target, testbed.as_ref(), kilnd.as_ref(), number("--runs", 30)?).await
        }
        "images" => {
            let target =
                kiln_client::KilnTarget::new(required("--url")?, required("--token")?, required("--tenant")?);
            let (upload_image, cold_image) = (required("--upload-image")?, required("--cold-image")?);
            let (python_handler, python_sdk) = (required("--python-handler")?, required("--python-sdk")?);
            let (kilnd, pid) = (required("--kilnd")?, required("--pid")?);
            let synthetic_sizes = flag("--synthetic-mb")
                .unwrap_or_else(|| "100,500".to_owned())
                .split(',')
                .map(|size| {
                    size.trim()
                        .parse()
                        .context("--synthetic-mb takes sizes like 100,500")
                })
                .collect::<anyhow::Result<Vec<u64>>>()?;
            let bench = images::ImageBench {
                upload_image: upload_image.as_ref(),
                synthetic_sizes,
                cold_image: cold_image.as_ref(),
                python_handler: python_handler.as_ref(),
                python_sdk: python_sdk.as_ref(),
                kilnd: kilnd.as_ref(),
                kilnd_pid: &pid,
                runs: number("--runs", 30)?,
                requests: number("--requests", 2_000)?,
            };
            images::run(&target, &bench).await
        }
        "checkpoints" => {
            let target =
                kiln_client::KilnTarget::new(required("--url")?, required("--token")?, required("--tenant")?);
            let testbed = required("--testbed")?;
            durable::checkpoints(
                &target,
                testbed.as_ref(),
                number("--instances", 8)?,
                number("--count", 2000)?,
            )
            .await
        }
        "sleepers" => {
            let target =
                kiln_client::KilnTarget::new(required("--url")?, required("--token")?, required("--tenant")?);
            let testbed = required("--testbed")?;
            durable::sleepers(
                &target,
                testbed.as_ref(),
                number("--count", 100_000)?,
                number("--concurrency", 32)?,
                std::time::Duration::from_secs(number("--lead-seconds", 240)? as u64),
                std::time::Duration::from_secs(number("--spread-seconds", 30)? as u64),
                &required("--pid")?,
            )
            .await
        }
        "outage" => {
            let target =
                kiln_client::KilnTarget::new(required("--url")?, required("--token")?, required("--tenant")?);
            let database = outage::DatabaseControl {
                stop: required("--stop")?,
                start: required("--start")?,
                freeze: required("--freeze")?,
                thaw: required("--thaw")?,
            };
            let settings = outage::OutageSettings {
                concurrency: number("--concurrency", 4)?,
                seconds: number("--seconds", 10)? as u64,
            };
            outage::run(&target, required("--testbed")?.as_ref(), &database, &settings).await
        }
        "stream" => {
            let target =
                kiln_client::KilnTarget::new(required("--url")?, required("--token")?, required("--tenant")?);
            let settings = stream::StreamSettings {
                runs: number("--runs", 200)?,
                large_bytes: number("--mib", 1024)? as u64 * (1 << 20),
            };
            stream::run(
                &target,
                required("--testbed")?.as_ref(),
                &required("--pid")?,
                &settings,
            )
            .await
        }
        "events" => {
            let url = required("--url")?;
            let listing =
                std::fs::read_to_string(required("--tenants-file")?).context("reading --tenants-file")?;
            let tenants: Vec<events::EventTenant> = listing
                .lines()
                .filter_map(|line| line.split_once(' '))
                .map(|(tenant, token)| events::EventTenant {
                    target: kiln_client::KilnTarget::new(
                        url.clone(),
                        token.trim().to_owned(),
                        tenant.to_owned(),
                    ),
                })
                .collect();
            let settings = events::EventSettings {
                subscribers: number("--subscribers", 1000)?,
                rate: number("--rate", 2000)?,
                seconds: number("--seconds", 10)? as u64,
            };
            events::run(
                &tenants,
                required("--testbed")?.as_ref(),
                &required("--pid")?,
                &settings,
            )
            .await
        }
        "rss" => {
            let pid = required("--pid")?;
            let kilnd = stats::rss_kib(&pid)?;
            let sandbox = stats::child_rss_kib(&pid)?;
            println!("| kilnd RSS | {:.1} MB |", kilnd as f64 / 1024.0);
            println!("| sandbox process RSS | {:.1} MB |", sandbox as f64 / 1024.0);
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}
