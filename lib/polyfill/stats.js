'use strict'

// getStats(): an RTCStatsReport assembled from what the SDK knows: its states, the
// selected candidate pair, the sidecar's SCTP stats and each channel's counters (core).

class RTCStatsReport extends Map {}

function now() {
  return performance.timeOrigin + performance.now()
}

/**
 * `pc`: { connectionState, iceConnectionState, selectedCandidatePair, channels (wrapped
 * channels), opened, closed }; `sctp`: the sidecar's SCTP stats or null (not up yet).
 */
function buildReport(pc, sctp) {
  const timestamp = now()
  const report = new RTCStatsReport()
  const add = (stats) => report.set(stats.id, { timestamp, ...stats })
  add({ id: 'P', type: 'peer-connection', dataChannelsOpened: pc.opened, dataChannelsClosed: pc.closed })
  const pair = pc.selectedCandidatePair
  const bytesSent = sctp?.bytesSent ?? 0
  const bytesReceived = sctp?.bytesReceived ?? 0
  const connected = pc.connectionState === 'connected'
  add({
    id: 'T',
    type: 'transport',
    bytesSent,
    bytesReceived,
    iceState: pc.iceConnectionState,
    dtlsState: connected ? 'connected' : pc.connectionState === 'failed' ? 'failed' : 'new',
    ...(pair ? { selectedCandidatePairId: 'CP' } : {}),
  })
  if (pair) {
    const candidate = (id, type, c) => ({
      id,
      type,
      transportId: 'T',
      address: c.address,
      ip: c.address,
      port: c.port,
      protocol: c.protocol,
      candidateType: c.type,
      ...(c.relayProtocol ? { relayProtocol: c.relayProtocol } : {}),
    })
    add(candidate('CL', 'local-candidate', pair.local))
    add(candidate('CR', 'remote-candidate', pair.remote))
    add({
      id: 'CP',
      type: 'candidate-pair',
      transportId: 'T',
      localCandidateId: 'CL',
      remoteCandidateId: 'CR',
      state: connected ? 'succeeded' : 'in-progress',
      nominated: true,
      selected: true,
      bytesSent,
      bytesReceived,
      ...(sctp && Number.isFinite(sctp.srttMs) ? { currentRoundTripTime: sctp.srttMs / 1000 } : {}),
    })
  }
  pc.channels.forEach((channel, i) => {
    let counters
    try {
      counters = channel._counters
    } catch {
      counters = { messagesSent: 0, bytesSent: 0, messagesReceived: 0, bytesReceived: 0 }
    }
    add({
      id: `D${i}`,
      type: 'data-channel',
      label: channel.label,
      protocol: channel.protocol,
      state: channel.readyState,
      ...counters,
    })
  })
  return report
}

module.exports = { RTCStatsReport, buildReport }
