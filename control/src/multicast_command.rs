//! `stratactl multicast list|add|remove` and `/api/v1/multicast`: the control call each
//! form makes, and how the list prints.

use std::net::{IpAddr, SocketAddr};

use crate::protocol::{MulticastCall, MulticastListed, MulticastOutput};
use crate::table::render;

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum MulticastAction {
    /// Every output: the configuration's and those added at run time
    List,
    /// Send STREAM (app/name, app/instance/name, app/*) to GROUP (239.1.1.1:5000) as MPEG-TS
    Add {
        stream: String,
        group: SocketAddr,
        /// Hops the datagrams may take
        #[arg(long, default_value_t = 16)]
        ttl: u32,
        /// Outgoing interface: an IPv4 address of it, or its name
        #[arg(long)]
        interface: Option<String>,
        /// RTP (RFC 2250) rather than plain UDP
        #[arg(long)]
        rtp: bool,
        /// TS packets per datagram (1..=7)
        #[arg(long, default_value_t = crate::protocol::DEFAULT_PACKETS_PER_DATAGRAM)]
        packet_size: usize,
        /// DSCP code point (0..=63)
        #[arg(long, default_value_t = 0)]
        dscp: u8,
        /// Pace sends to this many bits per second (0: unpaced)
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Send from this address of the host (what source-specific receivers join)
        #[arg(long)]
        source: Option<IpAddr>,
    },
    /// Stop an output added at run time
    Remove { stream: String, group: SocketAddr },
}

pub fn call(action: MulticastAction) -> MulticastCall {
    match action {
        MulticastAction::List => MulticastCall::List,
        MulticastAction::Add {
            stream,
            group,
            ttl,
            interface,
            rtp,
            packet_size,
            dscp,
            rate,
            source,
        } => MulticastCall::Add {
            output: MulticastOutput {
                stream,
                group,
                ttl,
                interface,
                rtp,
                packet_size,
                dscp,
                rate,
                source,
            },
        },
        MulticastAction::Remove { stream, group } => MulticastCall::Remove { stream, group },
    }
}

pub fn table(outputs: &[MulticastListed]) -> String {
    if outputs.is_empty() {
        return "no multicast outputs\n".into();
    }
    let rows: Vec<Vec<String>> = outputs
        .iter()
        .map(|l| {
            let o = &l.output;
            vec![
                o.stream.clone(),
                o.group.to_string(),
                if o.rtp { "rtp" } else { "udp" }.into(),
                o.ttl.to_string(),
                o.interface.clone().unwrap_or_else(|| "-".into()),
                o.packet_size.to_string(),
                o.dscp.to_string(),
                if o.rate == 0 {
                    "-".into()
                } else {
                    o.rate.to_string()
                },
                l.origin.clone(),
            ]
        })
        .collect();
    render(
        &[
            "STREAM",
            "GROUP",
            "AS",
            "TTL",
            "INTERFACE",
            "PACKETS",
            "DSCP",
            "RATE",
            "FROM",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        action: MulticastAction,
    }

    #[test]
    fn add_with_options_becomes_the_call() {
        let cli = Cli::parse_from([
            "x",
            "add",
            "live/cam",
            "239.1.1.1:5000",
            "--rtp",
            "--ttl",
            "4",
            "--dscp",
            "34",
        ]);
        let MulticastCall::Add { output } = call(cli.action) else {
            panic!("not an add");
        };
        assert_eq!(output.stream, "live/cam");
        assert_eq!(output.group.to_string(), "239.1.1.1:5000");
        assert!(output.rtp);
        assert_eq!((output.ttl, output.dscp, output.packet_size), (4, 34, 7));
        let json = serde_json::to_value(crate::protocol::Call::Multicast(MulticastCall::Add {
            output,
        }))
        .expect("json");
        assert_eq!(json["method"], "multicast");
        assert_eq!(json["params"]["op"], "add");
        assert_eq!(json["params"]["output"]["group"], "239.1.1.1:5000");
    }

    #[test]
    fn list_prints_origin() {
        let listed = MulticastListed {
            output: serde_json::from_str(r#"{"stream":"live/*","group":"239.1.1.2:5000"}"#)
                .expect("output"),
            origin: "config".into(),
        };
        let t = table(&[listed]);
        assert!(t.contains("live/*") && t.contains("239.1.1.2:5000") && t.contains("config"));
        assert_eq!(table(&[]), "no multicast outputs\n");
    }
}
