// ESM entry: the same classes as the CommonJS entry.
import binding from './index.js'

export const { PionIpc } = binding
export default binding
