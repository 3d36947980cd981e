use super::*;

fn muxed(packets: usize, key: bool, timestamp: u32, fill: u8) -> Muxed {
    Muxed {
        bytes: Bytes::from(vec![fill; packets * TS_PACKET_SIZE]),
        key,
        timestamp,
    }
}

/// The datagrams of a send, as the kernel would cut them.
fn datagrams(o: &Output, send: &Send) -> Vec<Vec<u8>> {
    let mut all = Vec::new();
    for p in &send.parts {
        match p {
            Part::Header(i) => all.extend_from_slice(&o.headers[*i]),
            Part::Data(b) => all.extend_from_slice(b),
        }
    }
    assert_eq!(
        all.len(),
        send.bytes + if o.rtp { send.datagrams * 12 } else { 0 }
    );
    all.chunks(send.segment).map(<[u8]>::to_vec).collect()
}

#[test]
fn starts_on_a_key_frame() {
    let mut o = Output::new(7, false, 0, 0, 1);
    o.offer(&muxed(3, false, 0, 1));
    assert!(o.poll_send(0).is_none());
    assert_eq!(o.state(), State::WaitingForKey);
    o.offer(&muxed(3, true, 40, 2));
    o.offer(&muxed(2, false, 80, 3));
    let send = o.poll_send(0).expect("a send");
    assert_eq!(
        (send.bytes, send.datagrams, send.segment),
        (5 * 188, 1, 1316)
    );
    let send = std::mem::take(&mut o.send);
    let d = datagrams(&o, &send);
    o.send = send;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0][0], 2, "the key frame first");
    assert!(o.completed(Ok(5 * 188), 0).is_ok());
    assert_eq!(o.stats.datagrams, 1);
    assert_eq!(o.stats.bytes, 5 * 188);
    assert!(o.poll_send(0).is_none());
}

#[test]
fn datagrams_span_frames_and_rtp_numbers_them() {
    let mut o = Output::new(7, true, 0, 0, 0xabcd);
    o.offer(&muxed(5, true, 1000, 1));
    o.offer(&muxed(5, false, 1040, 2));
    o.offer(&muxed(5, false, 1080, 3));
    let send = o.poll_send(0).expect("a send");
    assert_eq!(
        (send.datagrams, send.segment, send.bytes),
        (3, 1328, 15 * 188)
    );
    let send = std::mem::take(&mut o.send);
    let d = datagrams(&o, &send);
    o.send = send;
    assert_eq!(d.len(), 3);
    assert_eq!(d[0].len(), 1328);
    assert_eq!(d[2].len(), 12 + 188, "the last is short");
    for (i, g) in d.iter().enumerate() {
        assert_eq!(&g[..2], &[0x80, 33]);
        assert_eq!(u16::from_be_bytes([g[2], g[3]]), i as u16);
        assert_eq!(&g[8..12], &0xabcdu32.to_be_bytes());
    }
    // The RTP time is that of the frame each datagram starts in, at 90 kHz.
    assert_eq!(
        u32::from_be_bytes([d[0][4], d[0][5], d[0][6], d[0][7]]),
        90_000
    );
    assert_eq!(
        u32::from_be_bytes([d[1][4], d[1][5], d[1][6], d[1][7]]),
        93_600
    );
    // The first datagram: frame 1's 5 packets and 2 of frame 2; the second: 3 of frame
    // 2, then 4 of frame 3.
    assert_eq!(d[0][12 + 5 * 188], 2);
    assert_eq!(d[1][12], 2);
    assert_eq!(d[1][12 + 3 * 188], 3);
    assert!(o.completed(Ok(1), 0).is_ok());
    assert_eq!(o.queued, 0);
}

#[test]
fn one_send_at_a_time_and_at_most_one_gso_call() {
    let mut o = Output::new(7, false, 0, 0, 1);
    o.offer(&muxed(7 * 100, true, 0, 1));
    let send = o.poll_send(0).expect("a send");
    assert_eq!(send.datagrams, 49, "64 KB of 1316-byte segments");
    assert!(o.poll_send(0).is_none(), "the first is in flight");
    assert!(o.completed(Ok(0), 0).is_ok());
    assert_eq!(o.poll_send(0).expect("the rest").datagrams, 49);
}

#[test]
fn pacing_keeps_within_the_rate() {
    // 1,052,800 bit/s: 100 datagrams of 1316 bytes a second, bursts of 10 ms (one).
    let rate = 1316 * 8 * 100;
    let mut o = Output::new(7, false, rate, 0, 1);
    o.offer(&muxed(7 * 50, true, 0, 1));
    let mut sent = 0;
    let mut now = 0;
    while now <= 200 {
        if let Some(s) = o.poll_send(now) {
            sent += s.datagrams;
            assert!(o.completed(Ok(1), now).is_ok());
        }
        now = o.next_due(now).unwrap_or(now + 1).max(now + 1);
    }
    assert!((19..=22).contains(&sent), "{sent} datagrams in 200 ms");
}

#[test]
fn a_failed_send_backs_off_then_resumes_on_a_key_frame() {
    let mut o = Output::new(7, false, 0, 0, 1);
    o.offer(&muxed(7, true, 0, 1));
    o.poll_send(0).expect("a send");
    assert_eq!(
        o.completed(Err(libc::ENETUNREACH), 0),
        Err(libc::ENETUNREACH)
    );
    assert_eq!(o.failures(), 1);
    assert_eq!(
        o.state(),
        State::BackingOff {
            errno: libc::ENETUNREACH,
            retry_at: 250
        }
    );
    o.offer(&muxed(7, true, 40, 2));
    assert!(o.poll_send(100).is_none());
    assert_eq!(o.next_due(100), Some(250));
    assert!(o.poll_send(250).is_none());
    assert_eq!(o.state(), State::WaitingForKey);
    o.offer(&muxed(7, false, 80, 3));
    o.offer(&muxed(7, true, 120, 4));
    assert!(o.poll_send(250).is_some());
    assert!(o.completed(Ok(1), 250).is_ok());
    assert_eq!(o.failures(), 0);
    assert_eq!(o.stats.dropped_bytes, 7 * 188);
}

#[test]
fn an_overflowing_queue_drops_and_waits_for_a_key_frame() {
    let mut o = Output::new(7, false, 0, 0, 1);
    let big = MAX_QUEUED / TS_PACKET_SIZE / 2 + 1;
    o.offer(&muxed(big, true, 0, 1));
    o.offer(&muxed(big, false, 40, 2));
    assert_eq!(o.queued, 0);
    assert_eq!(o.state(), State::WaitingForKey);
    assert_eq!(o.stats.dropped_bytes, (big * TS_PACKET_SIZE) as u64);
}

#[test]
fn a_source_leaving_waits_for_the_next_key_frame() {
    let mut o = Output::new(7, false, 0, 0, 1);
    o.offer(&muxed(1, true, 0, 1));
    o.source_left();
    o.offer(&muxed(1, false, 40, 2));
    assert_eq!(o.queued, 188);
    o.offer(&muxed(1, true, 0, 3));
    assert_eq!(o.queued, 2 * 188);
}

#[test]
fn frames_within_the_batch_window_share_one_send() {
    let mut o = Output::new(7, false, 0, 150, 1);
    o.offer(&muxed(3, true, 0, 1));
    assert!(o.poll_send(1000).is_none(), "the window starts");
    assert_eq!(o.next_due(1000), Some(1150));
    o.offer(&muxed(3, false, 40, 2));
    assert!(o.poll_send(1100).is_none());
    let send = o.poll_send(1150).expect("the batch");
    assert_eq!(send.bytes, 6 * 188);
    assert!(o.completed(Ok(1), 1150).is_ok());
    assert_eq!(o.next_due(1150), None);
}

#[test]
fn aligned_batches_of_outputs_starting_apart_end_together() {
    // Two outputs whose first frames come 40 ms apart: both send at the clock's next
    // multiple of 150, the worker's one wake-up for both.
    let mut a = Output::new(7, false, 0, 150, 1).aligned();
    let mut b = Output::new(7, false, 0, 150, 2).aligned();
    a.offer(&muxed(3, true, 0, 1));
    assert!(a.poll_send(1010).is_none());
    b.offer(&muxed(3, true, 0, 2));
    assert!(b.poll_send(1050).is_none());
    assert_eq!(a.next_due(1050), Some(1050));
    assert_eq!(
        b.next_due(1050),
        Some(1200),
        "seen at 1050 exactly: waits a whole batch"
    );
    assert!(a.poll_send(1049).is_none());
    assert!(a.poll_send(1050).is_some());
    assert!(b.poll_send(1199).is_none());
    assert!(b.poll_send(1200).is_some());
    // A frame never waits more than the batch.
    let mut c = Output::new(7, false, 0, 150, 3).aligned();
    c.offer(&muxed(1, true, 0, 3));
    assert!(c.poll_send(1051).is_none());
    assert_eq!(c.next_due(1051), Some(1200));
}

#[test]
fn plain_udp_sends_one_range_per_frame() {
    // 3 frames of 5 packets: 3 datagrams of 7, 7 and 1 packets, but only 3 iovecs (the
    // kernel cuts the datagrams); with RTP each datagram needs its own header and ranges.
    let mut o = Output::new(7, false, 0, 0, 1);
    for (i, key) in [true, false, false].into_iter().enumerate() {
        o.offer(&muxed(5, key, i as u32 * 40, i as u8 + 1));
    }
    let send = o.poll_send(0).expect("a send");
    assert_eq!((send.datagrams, send.parts.len()), (3, 3));
    let send = std::mem::take(&mut o.send);
    let d = datagrams(&o, &send);
    assert_eq!(d.len(), 3);
    assert_eq!(
        (d[0][0], d[0][5 * 188], d[1][3 * 188], d[2][0]),
        (1, 2, 3, 3)
    );
    let mut r = Output::new(7, true, 0, 0, 1);
    for (i, key) in [true, false, false].into_iter().enumerate() {
        r.offer(&muxed(5, key, i as u32 * 40, i as u8 + 1));
    }
    assert_eq!(r.poll_send(0).expect("a send").parts.len(), 3 + 5);
}
