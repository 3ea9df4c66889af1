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

/// Keeps one connection per name server and registers through it.
pub struct Registrar {
    addrs: Vec<String>,
    /// Timeout of one registration call and of connecting (`registerBrokerTimeoutMills`).
    timeout: Duration,
    clients: RefCell<HashMap<String, Client>>,
}

impl Registrar {
    pub fn new(addrs: Vec<String>, timeout: Duration) -> Registrar {
        Registrar { addrs, timeout, clients: RefCell::default() }
    }

    async fn client(&self, addr: &str) -> Option<Client> {
        if let Some(client) = self.clients.borrow().get(addr).filter(|c| !c.is_closed()) {
            return Some(client.clone());
        }
        let socket = addr.to_socket_addrs().ok()?.next()?;
        match Client::connect(socket, self.timeout).await {
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
    pub async fn register_all(&self, plane: &Rc<RefCell<ControlPlane>>) {
        let request = plane.borrow().register_request();
        for addr in &self.addrs {
            let Some(client) = self.client(addr).await else { continue };
            match client.invoke(request.clone(), self.timeout).await {
                Ok(response) if response.code == response_code::SUCCESS => {
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
