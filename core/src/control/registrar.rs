//! Name-server registration (PROTOCOL.md §2.6): REGISTER_BROKER to every name server at start,
//! every `registerNameServerPeriod` and at once when topics change; UNREGISTER_BROKER at stop.
//!
//! Runs on the control thread, one connection kept per name server.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::rc::Rc;
use std::time::Duration;

use ferromq_net::client::Client;
use ferromq_net::codes::response_code;
use tracing::warn;

use super::plane::ControlPlane;

/// What one registration round's answers said of the registering broker's master: a name
/// server answers a slave's registration with the live master's `masterAddr` and
/// `haServerAddr` (§2.6 step 5), and with neither when it knows no live master.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MasterAnswer {
    /// Whether any name server accepted the registration (else the round says nothing).
    pub answered: bool,
    /// The first `masterAddr` among the answers.
    pub master_addr: Option<String>,
    /// The `haServerAddr` of the same answer.
    pub ha_server_addr: Option<String>,
}

impl MasterAnswer {
    /// Takes one successful answer into account: the first that names a master wins, as Java
    /// takes its first name server's result.
    fn note(&mut self, response: &ferromq_net::RemotingCommand) {
        self.answered = true;
        if self.master_addr.is_some() {
            return;
        }
        if let Some(master) = response.ext("masterAddr").filter(|a| !a.is_empty()) {
            self.master_addr = Some(master.to_owned());
            self.ha_server_addr = response.ext("haServerAddr").filter(|a| !a.is_empty()).map(str::to_owned);
        }
    }
}

/// Keeps one connection per name server and registers through it.
pub struct Registrar {
    addrs: Vec<String>,
    /// Timeout of one registration call and of connecting (`registerBrokerTimeoutMills`).
    timeout: Duration,
    clients: RefCell<HashMap<String, Client>>,
    /// TLS of the connections (`tls.enable`); `None`: plain.
    tls: Option<ferromq_net::tls::TlsConnector>,
    /// What registrations are signed with (`accessKey`/`secretKey`), for name servers with
    /// ACL on.
    signer: Option<ferromq_net::acl::Credentials>,
}

impl Registrar {
    pub fn new(addrs: Vec<String>, timeout: Duration, tls: Option<ferromq_net::tls::TlsConnector>, signer: Option<ferromq_net::acl::Credentials>) -> Registrar {
        Registrar { addrs, timeout, clients: RefCell::default(), tls, signer }
    }

    async fn client(&self, addr: &str) -> Option<Client> {
        if let Some(client) = self.clients.borrow().get(addr).filter(|c| !c.is_closed()) {
            return Some(client.clone());
        }
        let socket = addr.to_socket_addrs().ok()?.next()?;
        let handler = Rc::new(ferromq_net::conn::NotSupported);
        match Client::connect_with_tls(socket, self.timeout, handler, Default::default(), self.tls.as_ref()).await.map(|c| c.signed_by(self.signer.clone())) {
            Ok(client) => {
                self.clients.borrow_mut().insert(addr.to_owned(), client.clone());
                Some(client)
            }
            Err(e) => {
                warn!(namesrv = addr, "cannot connect to the name server: {e}");
                None
            }
        }
    }

    /// Whether any name server lacks this broker's current topic-table version (Java
    /// `needRegister`): asked with QUERY_DATA_VERSION; a server that does not answer counts as
    /// lacking it. The query also refreshes the broker's liveness on each server.
    pub async fn needs_register(&self, plane: &Rc<RefCell<ControlPlane>>) -> bool {
        let request = plane.borrow().query_data_version_request();
        let mut needed = false;
        for addr in &self.addrs {
            let Some(client) = self.client(addr).await else {
                needed = true;
                continue;
            };
            match client.invoke(request.clone(), self.timeout).await {
                Ok(response) if response.code == response_code::SUCCESS => {
                    let changed = response.ext("changed").is_some_and(|c| c.eq_ignore_ascii_case("true"));
                    needed |= changed || response.body.is_empty() || response.body != request.body;
                }
                Ok(_) => needed = true,
                Err(e) => {
                    warn!(namesrv = addr, "data version query failed: {e}");
                    client.close();
                    needed = true;
                }
            }
        }
        needed
    }

    /// Registers with every name server; applies the order-topic table a name server returns.
    /// Returns what the round learned of this broker's master (a slave's, §7.2).
    pub async fn register_all(&self, plane: &Rc<RefCell<ControlPlane>>) -> MasterAnswer {
        let request = plane.borrow().register_request();
        let mut master = MasterAnswer::default();
        for addr in &self.addrs {
            let Some(client) = self.client(addr).await else { continue };
            match client.invoke(request.clone(), self.timeout).await {
                Ok(response) if response.code == response_code::SUCCESS => {
                    master.note(&response);
                    if !response.body.is_empty() {
                        plane.borrow_mut().apply_order_topics(&response.body);
                    }
                }
                Ok(response) => warn!(namesrv = addr, code = response.code, remark = ?response.remark, "registration refused"),
                Err(e) => {
                    warn!(namesrv = addr, "registration failed: {e}");
                    client.close();
                }
            }
        }
        master
    }

    /// UNREGISTER_BROKER to every name server, then closes the connections.
    pub async fn unregister_all(&self, plane: &Rc<RefCell<ControlPlane>>) {
        let request = plane.borrow().unregister_request();
        for addr in &self.addrs {
            let Some(client) = self.client(addr).await else { continue };
            if let Err(e) = client.invoke(request.clone(), self.timeout).await {
                warn!(namesrv = addr, "unregistration failed: {e}");
            }
            client.close();
        }
    }
}
