//! The egress network of one node: set up on first use, namespaces prepared ahead, handed
//! to containers and removed after them, traffic counted, everything removed on shutdown.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kiln_types::EgressRule;
use parking_lot::Mutex;
use thiserror::Error;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::EgressConfig;
use crate::command::run_script;
use crate::dns::{first_nameserver, start_forwarder};
use crate::firewall;
use crate::names::Names;
use crate::slot::{self, Slot};

#[derive(Debug, Error, Clone)]
pub enum NetworkError {
    #[error("setting up the egress network failed: {0}")]
    Setup(String),
    #[error("preparing a network namespace failed: {0}")]
    Prepare(String),
    #[error("every address of the egress subnet is in use; give KILN_EGRESS_SUBNET a larger range")]
    SubnetFull,
    #[error("{0}")]
    Narrowing(String),
}

/// What one egress container sent, received and had refused since the last reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EgressTraffic {
    pub sent_bytes: u64,
    pub received_bytes: u64,
    pub refused_packets: u64,
}

/// A prepared namespace handed to one container.
#[derive(Debug)]
pub struct EgressAttachment {
    /// The namespace file the container joins.
    pub namespace: PathBuf,
    /// The resolv.conf naming the gateway's DNS forwarder, to mount at `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// The container's addresses.
    pub address: Ipv4Addr,
    pub address6: Option<Ipv6Addr>,
    slot: Slot,
    narrowed: bool,
    /// Counters already reported.
    reported: Mutex<EgressTraffic>,
}

impl EgressAttachment {
    fn has_address(&self, address: IpAddr) -> bool {
        address == IpAddr::V4(self.address) || Some(address) == self.address6.map(IpAddr::V6)
    }

    /// Counters now (veth bytes, refusals of either address) minus those last reported.
    /// Without a reading of the refusals (`None`), they count as unchanged until the next.
    fn since_last_reading(&self, refused: Option<&[(IpAddr, u64)]>) -> EgressTraffic {
        let (sent, received) = slot::traffic(&self.slot.veth);
        let mut reported = self.reported.lock();
        let refused = refused.map_or(reported.refused_packets, |refused| {
            refused
                .iter()
                .filter(|(address, _)| self.has_address(*address))
                .map(|(_, packets)| packets)
                .sum()
        });
        let now = EgressTraffic {
            sent_bytes: sent,
            received_bytes: received,
            refused_packets: refused,
        };
        let delta = EgressTraffic {
            sent_bytes: now.sent_bytes.saturating_sub(reported.sent_bytes),
            received_bytes: now.received_bytes.saturating_sub(reported.received_bytes),
            refused_packets: now.refused_packets.saturating_sub(reported.refused_packets),
        };
        *reported = now;
        delta
    }
}

/// Cheap to clone; all clones share one network.
#[derive(Clone)]
pub struct EgressNetwork {
    inner: Arc<Inner>,
}

struct Inner {
    config: EgressConfig,
    names: Names,
    resolv_conf: PathBuf,
    /// Bridge, firewall and DNS forwarder, created on first use.
    setup: OnceCell<Result<(), String>>,
    ready: Mutex<Vec<Slot>>,
    indexes: Mutex<Indexes>,
    refilling: AtomicBool,
    stop: CancellationToken,
}

/// Slot indexes never used yet, and ones given back.
struct Indexes {
    next: u32,
    end: u32,
    returned: Vec<u32>,
}

impl Indexes {
    fn take(&mut self) -> Option<u32> {
        self.returned.pop().or_else(|| {
            (self.next < self.end).then(|| {
                self.next += 1;
                self.next - 1
            })
        })
    }
}

impl EgressNetwork {
    /// Removes whatever an earlier run of this node left (a killed kilnd cannot clean up);
    /// the network itself is set up by [`EgressNetwork::prepare_ahead`] or the first attach.
    pub async fn start(config: EgressConfig, data_dir: &Path) -> EgressNetwork {
        let names = Names::new(&config.tag);
        remove_everything(&names).await;
        let slots = config.slot_indexes();
        EgressNetwork {
            inner: Arc::new(Inner {
                resolv_conf: data_dir.join("resolv.conf"),
                names,
                setup: OnceCell::new(),
                ready: Mutex::new(Vec::new()),
                indexes: Mutex::new(Indexes {
                    next: slots.start,
                    end: slots.end,
                    returned: Vec::new(),
                }),
                refilling: AtomicBool::new(false),
                stop: CancellationToken::new(),
                config,
            }),
        }
    }

    /// Sets the network up now and fills the prepared namespaces, in the background.
    pub fn prepare_ahead(&self) {
        let network = self.clone();
        tokio::spawn(async move {
            if let Err(error) = network.ensure_setup().await {
                tracing::error!(%error, "egress network unavailable");
            }
        });
    }

    /// A namespace for one container, allowed only `rules` when they are not empty.
    pub async fn attach(&self, rules: &[EgressRule]) -> Result<EgressAttachment, NetworkError> {
        self.ensure_setup().await?;
        let inner = &self.inner;
        let destinations = if rules.is_empty() {
            None
        } else {
            Some(
                firewall::destinations(rules, inner.config.subnet6.is_some())
                    .await
                    .map_err(NetworkError::Narrowing)?,
            )
        };
        let ready = inner.ready.lock().pop();
        self.refill();
        let slot = match ready {
            Some(slot) => slot,
            None => self.prepare_one().await?,
        };
        if let Some(destinations) = &destinations {
            let addresses = (slot.address, slot.address6);
            let script = firewall::narrowing(&inner.names, slot.index, addresses, destinations);
            if let Err(error) = run_script("nft", &["-f", "-"], &script).await {
                self.remove_slot(slot).await;
                return Err(NetworkError::Narrowing(error));
            }
        }
        Ok(EgressAttachment {
            namespace: slot.namespace.clone(),
            resolv_conf: inner.resolv_conf.clone(),
            address: slot.address,
            address6: slot.address6,
            narrowed: destinations.is_some(),
            reported: Mutex::new(EgressTraffic::default()),
            slot,
        })
    }

    /// Traffic of each attachment since its last reading.
    pub async fn sample(&self, attachments: &[&EgressAttachment]) -> Vec<EgressTraffic> {
        if attachments.is_empty() {
            return Vec::new();
        }
        let refused = self.refused_counts().await;
        attachments
            .iter()
            .map(|attachment| attachment.since_last_reading(refused.as_deref()))
            .collect()
    }

    /// Removes a container's namespace once the container is gone; returns its last traffic.
    pub async fn detach(&self, attachment: &EgressAttachment) -> EgressTraffic {
        let refused = self.refused_counts().await;
        let last = attachment.since_last_reading(refused.as_deref());
        let names = &self.inner.names;
        let mut script = String::new();
        if attachment.narrowed {
            let addresses = (attachment.address, attachment.address6);
            script.push_str(&firewall::narrowing_removal(
                names,
                attachment.slot.index,
                addresses,
            ));
        }
        let addresses = [
            Some(IpAddr::V4(attachment.address)),
            attachment.address6.map(IpAddr::V6),
        ];
        let counted: Vec<IpAddr> = match &refused {
            // One script is one transaction: only elements that exist may be deleted in it.
            Some(refused) => refused
                .iter()
                .map(|(address, _)| *address)
                .filter(|address| attachment.has_address(*address))
                .collect(),
            None => Vec::new(),
        };
        for address in &counted {
            script.push_str(&firewall::refused_removal(names, *address));
        }
        if !script.is_empty()
            && let Err(error) = run_script("nft", &["-f", "-"], &script).await
        {
            tracing::warn!(%error, "removing a container's firewall entries failed");
        }
        if refused.is_none() {
            // Unknown which addresses have counts: try each alone (a missing one fails alone),
            // so the next container on these addresses starts at zero.
            for address in addresses.into_iter().flatten() {
                let _ = run_script("nft", &["-f", "-"], &firewall::refused_removal(names, address)).await;
            }
        }
        self.remove_slot(attachment.slot.clone()).await;
        last
    }

    /// The refusal counters, or `None` when nft could not list them twice in a row (a
    /// listing is interrupted when another program changes the ruleset meanwhile).
    async fn refused_counts(&self) -> Option<Vec<(IpAddr, u64)>> {
        let names = &self.inner.names;
        match firewall::refused_counts(names).await {
            Ok(counts) => Some(counts),
            Err(first) => match firewall::refused_counts(names).await {
                Ok(counts) => Some(counts),
                Err(error) => {
                    tracing::warn!(%first, %error, "reading egress refusal counters failed");
                    None
                }
            },
        }
    }

    /// Removes the bridge, every namespace and the firewall table; stops the DNS forwarder.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.stop.cancel();
        while inner.refilling.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        inner.ready.lock().clear();
        remove_everything(&inner.names).await;
    }

    async fn ensure_setup(&self) -> Result<(), NetworkError> {
        let inner = &self.inner;
        let outcome = inner
            .setup
            .get_or_init(|| async {
                let outcome = self.set_up().await;
                if outcome.is_ok() {
                    self.refill();
                }
                outcome
            })
            .await;
        outcome.clone().map_err(NetworkError::Setup)
    }

    async fn set_up(&self) -> Result<(), String> {
        let inner = &self.inner;
        let upstream = match inner.config.dns_upstream {
            Some(upstream) => upstream,
            None => {
                let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                first_nameserver(&host)
                    .ok_or("the host's /etc/resolv.conf names no nameserver; set KILN_EGRESS_DNS")?
            }
        };
        let gateway = inner.config.gateway();
        std::fs::write(&inner.resolv_conf, format!("nameserver {gateway}\n"))
            .map_err(|error| format!("writing {}: {error}", inner.resolv_conf.display()))?;
        slot::create_bridge(&inner.config, &inner.names).await?;
        run_script(
            "nft",
            &["-f", "-"],
            &firewall::ruleset(&inner.config, &inner.names),
        )
        .await?;
        start_forwarder(gateway, upstream, inner.stop.clone())
            .await
            .map_err(|error| format!("starting the DNS forwarder on {gateway}:53: {error}"))?;
        let subnet6 = inner
            .config
            .subnet6
            .map(|subnet6| subnet6.to_string())
            .unwrap_or_else(|| "none".into());
        tracing::info!(subnet = %inner.config.subnet, %subnet6, %upstream, "egress network ready");
        Ok(())
    }

    /// Keeps `prepared` namespaces ready; one refiller at a time.
    fn refill(&self) {
        let inner = &self.inner;
        if inner.stop.is_cancelled() || inner.refilling.swap(true, Ordering::SeqCst) {
            return;
        }
        let network = self.clone();
        tokio::spawn(async move {
            let inner = &network.inner;
            while !inner.stop.is_cancelled() && inner.ready.lock().len() < inner.config.prepared {
                match network.prepare_one().await {
                    // Shut down meanwhile: the slot was made after the sweep, so remove it here.
                    Ok(slot) if inner.stop.is_cancelled() => network.remove_slot(slot).await,
                    Ok(slot) => inner.ready.lock().push(slot),
                    Err(error) => {
                        tracing::warn!(%error, "preparing an egress namespace ahead failed");
                        break;
                    }
                }
            }
            inner.refilling.store(false, Ordering::SeqCst);
        });
    }

    async fn prepare_one(&self) -> Result<Slot, NetworkError> {
        let inner = &self.inner;
        let index = inner.indexes.lock().take().ok_or(NetworkError::SubnetFull)?;
        match slot::prepare(&inner.config, &inner.names, index).await {
            Ok(slot) => Ok(slot),
            Err(error) => {
                inner.indexes.lock().returned.push(index);
                Err(NetworkError::Prepare(error))
            }
        }
    }

    async fn remove_slot(&self, slot: Slot) {
        slot::remove(&self.inner.names, slot.index).await;
        self.inner.indexes.lock().returned.push(slot.index);
    }
}

async fn remove_everything(names: &Names) {
    // Without nftables installed there is no table to remove.
    if let Err(error) = run_script("nft", &["-f", "-"], &firewall::removal(names)).await {
        tracing::debug!(%error, "removing the egress firewall table failed");
    }
    slot::remove_everything(names).await;
}
