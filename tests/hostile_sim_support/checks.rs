//! The invariants of tests/hostile_sim.rs checked at the end of a run (after quiescence).

use crate::*;

impl Sim<'_> {
    /// The invariants that need the whole run: called after quiescence.
    pub(crate) fn check(&mut self) {
        let sc = self.sc;
        let by_key: HashMap<(&str, &str), usize> = sc.sends.iter().enumerate().map(|(i, p)| ((HONEST[p.from], p.request_id.as_str()), i)).collect();
        let mut v: Vec<(Inv, String)> = Vec::new();
        // Lifecycle and the senders' side of NoLoss / NoFalseDelivered.
        for p in 0..sc.n {
            let mut events: HashMap<&str, Vec<&'static str>> = HashMap::new();
            for (t, _, ev) in &self.log[p] {
                let (rid, kind) = match ev {
                    ChannelEvent::Sent { request_id } => (request_id, "SENT"),
                    ChannelEvent::SendError { request_id, .. } => (request_id, "SEND_ERROR"),
                    ChannelEvent::Delivered { request_id } => {
                        self.check_delivered(p, request_id, *t, &by_key, &mut v);
                        (request_id, "DELIVERED")
                    }
                    _ => continue,
                };
                events.entry(rid.as_str()).or_default().push(kind);
            }
            for (i, pl) in sc.sends.iter().enumerate().filter(|(_, pl)| pl.from == p) {
                let evs = events.remove(pl.request_id.as_str()).unwrap_or_default();
                let rid = &pl.request_id;
                if !self.accepted[i] {
                    continue;
                }
                if pl.ephemeral {
                    let rate_drop = sc.rate.is_some() && evs == ["SEND_ERROR"];
                    if evs != ["SENT"] && !rate_drop {
                        v.push((Inv::Lifecycle, format!("{}: ephemeral {rid} has events {evs:?}", HONEST[p])));
                    }
                } else if evs != ["SENT", "DELIVERED"] {
                    let inv = if evs.iter().filter(|k| **k != "SENT").count() == 1 { Inv::NoLoss } else { Inv::Lifecycle };
                    v.push((inv, format!("{}: {rid} has events {evs:?} (want SENT, DELIVERED)", HONEST[p])));
                }
            }
            for (rid, evs) in events {
                v.push((Inv::Lifecycle, format!("{}: events {evs:?} for unknown request {rid}", HONEST[p])));
            }
        }
        // Receivers.
        for r in 0..sc.n {
            let me = HONEST[r];
            let mut count: HashMap<(&str, &str), u32> = HashMap::new();
            let mut last_pos: HashMap<usize, usize> = HashMap::new();
            let mut lost_in = vec![0u64; self.published[r].len()];
            let mut lost_keys = Vec::new();
            for (_, phase, ev) in &self.log[r] {
                match ev {
                    ChannelEvent::Lost { request_id, sender_id, error } => {
                        lost_in[*phase] += 1;
                        if sender_id.as_deref() == Some(me) {
                            v.push((Inv::EchoSpoof, format!("{me} was told a message of its own id was lost: {error}")));
                        }
                        if let (Some(rid), Some(sid)) = (request_id, sender_id) {
                            lost_keys.push((sid.as_str(), rid.as_str()));
                        }
                    }
                    ChannelEvent::Received { request_id, sender_id, payload } => {
                        let key = (sender_id.as_str(), request_id.as_str());
                        let c = count.entry(key).or_default();
                        *c += 1;
                        if *c == 2 {
                            v.push((Inv::NoDuplicates, format!("{me} received {sender_id}/{request_id} twice")));
                        }
                        let owned = (sender_id.clone(), request_id.clone());
                        if sender_id == me {
                            v.push((Inv::Integrity, format!("{me} received {request_id} under its own id")));
                        } else if self.mallory.invalid.contains(&owned) {
                            v.push((Inv::RefusesInvalid, format!("{me} received the invalid message {sender_id:?}/{request_id}")));
                        } else if let Some(&i) = by_key.get(&key) {
                            let pl = &sc.sends[i];
                            if payload.as_slice() != pl.payload.as_slice() {
                                v.push((Inv::Integrity, format!("{me} received {request_id} with other content ({} B)", payload.len())));
                            }
                            if !pl.ephemeral {
                                let pos = sc.sends[..i].iter().filter(|q| q.from == pl.from && !q.ephemeral).count();
                                if last_pos.insert(pl.from, pos).is_some_and(|prev| prev >= pos) {
                                    v.push((Inv::Integrity, format!("{me} received {request_id} out of {sender_id}'s send order")));
                                }
                            }
                        } else if !self.mallory.made_up.contains(&owned) {
                            v.push((Inv::Integrity, format!("{me} received unknown message {sender_id:?}/{request_id}")));
                        }
                    }
                    _ => {}
                }
            }
            for key in lost_keys {
                if count.contains_key(&key) {
                    v.push((Inv::LostReports, format!("{me} got both RECEIVED and a loss report for {}/{}", key.0, key.1)));
                }
            }
            for (i, pl) in sc.sends.iter().enumerate() {
                if pl.from != r && self.accepted[i] && !pl.ephemeral && !count.contains_key(&(HONEST[pl.from], pl.request_id.as_str())) {
                    v.push((Inv::NoLoss, format!("{me} never received {} ({} B)", pl.request_id, pl.payload.len())));
                }
            }
            // Probe rounds: what one idle participant did about one hostile message.
            for (k, pr) in self.probes.iter().enumerate() {
                let (what, lost) = (if pr.waiting { "content" } else { "sync" }, lost_in[k + 1]);
                if lost > MAX_LOST_REPORTS_PER_WAITING_MESSAGE * u64::from(pr.waiting) {
                    v.push((Inv::LostReports, format!("{me}: {lost} loss reports for probe {} ({what})", k + 1)));
                }
                let published = self.published[r][k + 1];
                if published > MAX_PUBLISHED_PER_HOSTILE_MESSAGE {
                    v.push((Inv::Amplification, format!("{me} published {published} messages about probe {} ({what})", k + 1)));
                }
                let lookups = self.lookups[r][k + 1];
                if lookups > MAX_LOOKUPS_PER_HINTED_ID * (pr.hinted_ids + 1) {
                    let ids = pr.hinted_ids;
                    v.push((Inv::Amplification, format!("{me} made {lookups} store lookups about probe {} ({what}, {ids} hinted ids)", k + 1)));
                }
            }
            if self.chans[r].pending() != (0, 0) {
                v.push((Inv::Quiescence, format!("{me}: {:?} still pending at quiescence", self.chans[r].pending())));
            }
        }
        for (inv, msg) in v {
            self.violation(inv, msg);
        }
    }

    /// NoFalseDelivered for one DELIVERED event of participant `p` at time `t`.
    fn check_delivered(&self, p: usize, rid: &str, t: u64, by_key: &HashMap<(&str, &str), usize>, v: &mut Vec<(Inv, String)>) {
        let Some(&i) = by_key.get(&(HONEST[p], rid)) else { return };
        let n = self.sc.sends[i].payload.len().div_ceil(self.sc.config.chunk_size_bytes).max(1);
        let ids = self.chunk_ids.get(&(p, rid.to_owned()));
        for k in 0..n as u32 {
            let reached = ids
                .and_then(|ids| ids.get(&k))
                .is_some_and(|id| (0..self.sc.n).any(|q| q != p && self.arrivals[q].get(id.as_str()).is_some_and(|&a| a <= t)));
            if !reached {
                v.push((Inv::NoFalseDelivered, format!("{} DELIVERED {rid} but no honest peer had received chunk {k} of {n}", HONEST[p])));
            }
        }
    }
}
