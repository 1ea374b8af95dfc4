// Must NOT type-check: listeners of the wrong shape (see __test__/types.test.mjs).
import { RTCPeerConnection } from 'pion-node-rs'

const pc = new RTCPeerConnection()
// 'datachannel' gives { channel }, not a string
pc.on('datachannel', (e: string) => console.log(e))
// 'message' gives { data }, and channels have no 'foo' event
pc.createDataChannel('x').on('message', (e: { text: string }) => console.log(e.text))
pc.createDataChannel('y').on('foo', () => {})
