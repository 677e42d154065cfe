//! Counting egress containers' traffic into the metrics: while they run, and when they end.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use network::EgressTraffic;

use crate::Dispatcher;
use crate::container::Container;

impl Dispatcher {
    /// Adds what every live egress container sent, received and had refused since the last count.
    pub(crate) async fn sample_egress(&self) {
        let live: Vec<Arc<Container>> = self
            .inner
            .containers
            .lock()
            .values()
            .map(|(_, container)| container.clone())
            .collect();
        let (containers, attachments): (Vec<_>, Vec<_>) = live
            .into_iter()
            .filter_map(|container| {
                let attachment = container.egress.lock().clone()?;
                Some((container, attachment))
            })
            .unzip();
        let borrowed: Vec<_> = attachments.iter().map(Arc::as_ref).collect();
        let traffic = self.inner.config.egress.sample(&borrowed).await;
        for (container, traffic) in containers.iter().zip(traffic) {
            self.count_egress(container, traffic);
        }
    }

    pub(crate) fn count_egress(&self, container: &Container, traffic: EgressTraffic) {
        if !container.counts_traffic.load(Ordering::SeqCst) {
            return;
        }
        let target = &container.target;
        self.inner.config.metrics.egress(
            &target.tenant,
            &target.function,
            traffic.sent_bytes,
            traffic.received_bytes,
            traffic.refused_packets,
        );
    }
}
