// lwm2m-node-client.js plays an LwM2M device with Telefonica's
// lwm2m-node-lib (npm), a client nobody on Doze wrote, for the platform's
// interop test (interop_node_test.go).
//
//   node lwm2m-node-client.js <npm dir> <server host> <server port> <endpoint>
//
// It registers over plain CoAP with Device (/3/0) and Temperature
// (/3303/0) instances, then takes one command a line on stdin:
//
//   set <object uri> <resource id> <value>   change a resource (an observer is notified)
//   deregister                               deregister, then exit
//
// and prints one JSON event a line on stdout: registered, read, write,
// execute, set, deregistered, error. Anything it cannot do is an "error"
// event and exit status 1. The library's own log goes to stderr.
'use strict';

const path = require('path');
const readline = require('readline');

const [npmDir, host, port, endpoint] = process.argv.slice(2);
if (!endpoint) {
    console.error('usage: node lwm2m-node-client.js <npm dir> <server host> <server port> <endpoint>');
    process.exit(2);
}
const modules = path.join(path.resolve(npmDir), 'node_modules');
// The library logs to stdout, which carries this script's events: its
// traces go to stderr, where the test shows them when it fails.
const logger = require(path.join(modules, 'logops'));
logger.setStream(process.stderr);
logger.setLevel(process.env.LWM2M_LOG_LEVEL || 'INFO');
// The client alone: the library's index also loads its server and MongoDB.
const client = require(path.join(modules, 'lwm2m-node-lib', 'lib', 'lwm2m-client'));

function emit(event, fields) {
    process.stdout.write(JSON.stringify(Object.assign({ event: event }, fields)) + '\n');
}

function fail(what, err) {
    emit('error', { what: what, message: String(err && (err.message || err.name) || err) });
    process.exit(1);
}

const objects = {
    '/3/0': { 0: 'Telefonica I+D', 1: 'lwm2m-node-lib', 3: '1.4.0' },
    '/3303/0': { 5601: '18.25', 5602: '24', 5700: '21.5', 5701: 'Cel', 5750: 'indoor' },
};

// create makes the object instances of objects, one after the other.
function create(uris, done) {
    if (uris.length === 0) {
        return done();
    }
    const uri = uris[0];
    client.registry.create(uri, (err) => {
        if (err) {
            return fail('create ' + uri, err);
        }
        const ids = Object.keys(objects[uri]);
        const next = (i) => {
            if (i === ids.length) {
                return create(uris.slice(1), done);
            }
            client.registry.setResource(uri, ids[i], objects[uri][ids[i]], (err) => {
                if (err) {
                    return fail('set ' + uri + '/' + ids[i], err);
                }
                next(i + 1);
            });
        };
        next(0);
    });
}

client.init({
    client: {
        lifetime: '300',
        version: '1.0',
        observe: { period: 3000 },
        ipProtocol: 'udp4',
        serverProtocol: 'udp4',
    },
});

create(Object.keys(objects), () => {
    client.register(host, port, '', endpoint, (err, device) => {
        if (err) {
            return fail('register', err);
        }
        const info = device.serverInfo;
        client.setHandler(info, 'read', (type, id, res, value, cb) => {
            emit('read', { path: '/' + type + '/' + id + '/' + res, value: String(value) });
            cb(null, value);
        });
        client.setHandler(info, 'write', (type, id, res, value, cb) => {
            emit('write', { path: '/' + type + '/' + id + '/' + res, value: String(value) });
            cb(null);
        });
        client.setHandler(info, 'execute', (type, id, res, args, cb) => {
            emit('execute', { path: '/' + type + '/' + id + '/' + res, args: String(args) });
            cb(null);
        });
        emit('registered', { location: device.location, port: device.localPort });
        commands(device);
    });
});

function commands(device) {
    const lines = readline.createInterface({ input: process.stdin });
    lines.on('line', (line) => {
        const f = line.trim().split(/\s+/);
        switch (f[0]) {
        case 'set':
            client.registry.setResource(f[1], f[2], f.slice(3).join(' '), (err) => {
                if (err) {
                    return fail(line, err);
                }
                emit('set', { path: f[1] + '/' + f[2] });
            });
            break;
        case 'deregister':
            client.unregister(device, (err) => {
                if (err) {
                    return fail('deregister', err);
                }
                emit('deregistered', {});
                process.exit(0);
            });
            break;
        default:
            fail('command', 'unknown command "' + line + '": set or deregister');
        }
    });
    lines.on('close', () => process.exit(0));
}
