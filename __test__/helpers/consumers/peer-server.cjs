'use strict'

// The PeerJS server (`peer` 1.0.2, PeerServer) on 127.0.0.1 and a free port, in its own
// process: it keeps intervals of its own running, so the test ends it by its pid.

const { PeerServer } = require('peer')
const { report } = require('./report.cjs')

const server = PeerServer({ host: '127.0.0.1', port: 0, path: '/', key: 'peerjs' }, (http) => {
  report('listening', { port: http.address().port })
})
server.on('connection', (client) => report('client', { id: client.getId() }))
server.on('disconnect', (client) => report('gone', { id: client.getId() }))
