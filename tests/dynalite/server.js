// dynalite on 127.0.0.1 and a free port, in memory (no --path): prints "PORT <n>" once listening
// and serves until its standard input closes, so it stops with the test process that started it.
'use strict'

const dynalite = require('dynalite')

// Tables are ACTIVE at once (dynalite's default keeps them CREATING/DELETING for 500 ms).
const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 })

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`PORT ${server.address().port}\n`)
})

function stop () {
  // dynalite's close waits for open connections (keep-alive clients); exit regardless.
  setTimeout(() => process.exit(0), 2000).unref()
  server.close(() => process.exit(0))
}

process.stdin.on('end', stop)
process.stdin.on('error', stop)
process.stdin.resume()
process.on('SIGTERM', stop)
