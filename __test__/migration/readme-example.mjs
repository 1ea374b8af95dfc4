// The usage example of @coclaw/pion-node 0.4.0's README, and its settings example, as they
// stand there; only the import line is changed to point at pion-node-rs.
import { PionIpc, RTCPeerConnection } from 'pion-node-rs';

const ipc = new PionIpc();
await ipc.start();

const pc = new RTCPeerConnection({
  _ipc: ipc,
  iceServers: [{ urls: ['stun:stun.l.google.com:19302'] }],
});

const dc = pc.createDataChannel('chat');
dc.onopen = () => {
  dc.send('hello!');
};
dc.onmessage = (evt) => {
  console.log('received:', evt.data);
};

pc.onicecandidate = (evt) => {
  // send evt.candidate to remote peer via signaling
};

// Diagnostic: log selected candidate pair (host/srflx/relay)
pc.onselectedcandidatepairchange = () => {
  const pair = pc.selectedCandidatePair;
  console.log(`${pair.local.type} ↔ ${pair.remote.type}`);
};

const offer = await pc.createOffer();
// ... exchange SDP with remote peer ...

// Clean up
await pc.close();

const pc2 = new RTCPeerConnection({
  _ipc: ipc,
  iceServers: [{ urls: ['stun:stun.l.google.com:19302'] }],
  settings: {
    sctpRtoMax: 10000,   // shorten worst-case SCTP backoff after long idle
    iceFailedTimeout: 15000,
    interfaceFilter: { denyPrefixes: ['docker', 'br-', 'veth'] },
    ipFilter: { denyCIDRs: ['172.16.0.0/12'] },
  },
});
const offer2 = await pc2.createOffer();
await pc2.close();

await ipc.stop();
console.log(`done: ${offer.type} ${offer2.type} ${dc.readyState} ${pc.connectionState}`);
