//! Applies one NAT service in the current network namespace, for trying
//! the backend by hand: `lb_apply VIP:PORT SCHED SERVER:PORT:WEIGHT...`
//! (`lb_apply clear` removes tandem's table).

use tandem_lb::{Backend, Nftables, Protocol, Scheduler, Service};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut lb = Nftables::open()?;
    if args.first().map(String::as_str) == Some("clear") {
        lb.clear()?;
        return Ok(());
    }
    let [vip, sched, servers @ ..] = &args[..] else {
        return Err("usage: lb_apply VIP:PORT SCHED SERVER:PORT:WEIGHT... | clear".into());
    };
    let vip: std::net::SocketAddr = vip.parse()?;
    let scheduler = Scheduler::from_name(sched).ok_or("unknown scheduler")?;
    let mut s = Service::nat(vip.ip(), vip.port(), Protocol::Tcp, scheduler);
    for sv in servers {
        let (addr, weight) = sv.rsplit_once(':').ok_or("SERVER:PORT:WEIGHT")?;
        let addr: std::net::SocketAddr = addr.parse()?;
        s = s.server(addr.ip(), addr.port(), weight.parse()?);
    }
    lb.apply(&[s])?;
    Ok(())
}
