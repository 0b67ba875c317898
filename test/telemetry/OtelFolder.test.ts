/**
 * The files of `otel/` agree with each other and with the guide: the
 * collector's pipelines use only what it defines, OTLP comes in where the
 * guide sends it, Prometheus scrapes the collector's exporter and the
 * daemon's control port, traces go to the Jaeger service, and Grafana's
 * provisioning finds the dashboards and the data sources they name. No
 * container runs here: these are the links a typo would break.
 */
import { assert, describe, it } from "@effect/vitest"
import { Predicate } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import * as Yaml from "yaml"
import * as Dashboards from "./GrafanaDashboards.ts"

const OTEL = Path.resolve(import.meta.dirname, "../../otel")
const read = (file: string) => Fs.readFileSync(Path.join(OTEL, file), "utf8")
const yaml = (file: string): unknown => Yaml.parse(read(file))

const isRecord = Predicate.isObject
const record = (u: unknown, what: string): Record<PropertyKey, unknown> => {
  assert.isTrue(isRecord(u), `${what} is a mapping`)
  return u as Record<PropertyKey, unknown>
}
const strings = (u: unknown): Array<string> => Array.isArray(u) ? u.filter(Predicate.isString) : []
const text = (u: unknown): string => Predicate.isString(u) ? u : ""

/** A component's type: `otlp/jaeger` is an `otlp`. */
const typeOf = (name: string) => name.split("/")[0]!
/** `host:port` (or `scheme://host:port/...`) split; the port as a number. */
const hostPort = (address: string): { readonly host: string; readonly port: number } => {
  const match = /^(?:[a-z]+:\/\/)?\[?([^\]/]*?)\]?:(\d+)(?:\/.*)?$/.exec(address.trim())
  assert.isNotNull(match, `${address} is host:port`)
  return { host: match![1]!, port: Number(match![2]) }
}

// --- docker-compose.yml

interface Service {
  readonly name: string
  readonly image: string
  readonly command: Array<string>
  /** Published host port to container port. */
  readonly ports: Map<number, number>
  /** Container path to the host path (resolved), for bind mounts. */
  readonly mounts: Map<string, string>
  readonly extraHosts: Array<string>
  readonly environment: Record<string, unknown>
}

const compose = (): Map<string, Service> => {
  const services = record(record(yaml("docker-compose.yml"), "docker-compose.yml").services, "services")
  const out = new Map<string, Service>()
  for (const [name, raw] of Object.entries(services)) {
    const s = record(raw, `service ${name}`)
    const ports = new Map<number, number>()
    for (const port of Array.isArray(s.ports) ? s.ports : []) {
      if (isRecord(port)) {
        ports.set(Number(port.published), Number(port.target))
      } else {
        // [ip:]host:container[/protocol]
        const parts = String(port).replace(/\/\w+$/, "").split(":")
        ports.set(Number(parts[parts.length - 2]), Number(parts[parts.length - 1]))
      }
    }
    const mounts = new Map<string, string>()
    for (const volume of strings(s.volumes)) {
      const [source, target] = volume.split(":")
      if (source !== undefined && target !== undefined && source.startsWith(".")) {
        mounts.set(target, Path.resolve(OTEL, source))
      }
    }
    out.set(name, {
      name,
      image: text(s.image),
      command: Array.isArray(s.command) ? strings(s.command) : text(s.command).split(/\s+/).filter((a) => a !== ""),
      ports,
      mounts,
      extraHosts: strings(s.extra_hosts),
      environment: isRecord(s.environment) ? s.environment : {}
    })
  }
  return out
}

/** The one service whose image contains `image`. */
const serviceOf = (services: Map<string, Service>, image: string): Service => {
  const found = [...services.values()].filter((s) => s.image.includes(image))
  assert.strictEqual(found.length, 1, `one service runs ${image}: ${[...services.values()].map((s) => s.image).join(", ")}`)
  return found[0]!
}

/** A `--flag=value` of a service's command. */
const flag = (service: Service, name: string): string => {
  const arg = service.command.find((a) => a.startsWith(`${name}=`))
  assert.isDefined(arg, `${service.name}'s command has ${name}=`)
  return arg!.slice(name.length + 1)
}

/** The container path where `file` (of otel/) is mounted in `service`. */
const mountOf = (service: Service, file: string): string => {
  const entry = [...service.mounts].find(([, source]) => source === Path.join(OTEL, file))
  assert.isDefined(entry, `${service.name} mounts ./${file}`)
  return entry![0]
}

// --- collector.yaml

interface Pipeline {
  readonly name: string
  readonly receivers: Array<string>
  readonly processors: Array<string>
  readonly exporters: Array<string>
}

const collector = () => {
  const config = record(yaml("collector.yaml"), "collector.yaml")
  const section = (name: string) => record(config[name] ?? {}, name)
  const pipelines = Object.entries(record(record(config.service, "service").pipelines, "service.pipelines")).map((
    [name, raw]
  ): Pipeline => {
    const p = record(raw, `pipeline ${name}`)
    return { name, receivers: strings(p.receivers), processors: strings(p.processors), exporters: strings(p.exporters) }
  })
  return {
    receivers: section("receivers"),
    processors: section("processors"),
    exporters: section("exporters"),
    pipelines,
    pipeline: (signal: string) => {
      const found = pipelines.filter((p) => typeOf(p.name) === signal)
      assert.isAbove(found.length, 0, `a ${signal} pipeline`)
      return found
    }
  }
}

/** The port a collector component listens on or sends to. */
const endpointOf = (component: unknown, what: string) => hostPort(text(record(component, what).endpoint))

// --- prometheus.yml

const scrapeTargets = (): Array<{ readonly job: string; readonly metricsPath: string; readonly target: string }> => {
  const config = record(yaml("prometheus.yml"), "prometheus.yml")
  assert.isArray(config.scrape_configs)
  return (config.scrape_configs as Array<unknown>).flatMap((raw) => {
    const job = record(raw, "scrape config")
    const statics = Array.isArray(job.static_configs) ? job.static_configs : []
    return statics.flatMap((s) =>
      strings(record(s, "static config").targets).map((target) => ({
        job: text(job.job_name),
        metricsPath: text(job.metrics_path) || "/metrics",
        target
      }))
    )
  })
}

// --- the guide

const guide = read("README.md")
/** The numbers the guide gives after `pattern` (a regex with one group). */
const guidePorts = (pattern: RegExp): Array<number> => [...guide.matchAll(pattern)].map((m) => Number(m[1]))

describe("otel/: collector, Prometheus, Grafana and the guide agree", () => {
  it("the collector's pipelines use only receivers, processors and exporters it defines; traces and metrics both flow", () => {
    const c = collector()
    assert.isAbove(c.pipelines.length, 0)
    for (const p of c.pipelines) {
      assert.include(["traces", "metrics", "logs"], typeOf(p.name), `pipeline ${p.name}`)
      assert.isAbove(p.receivers.length, 0, `${p.name} has receivers`)
      assert.isAbove(p.exporters.length, 0, `${p.name} has exporters`)
      for (const r of p.receivers) assert.property(c.receivers, r, `${p.name}: receiver ${r} is defined`)
      for (const x of p.processors) assert.property(c.processors, x, `${p.name}: processor ${x} is defined`)
      for (const e of p.exporters) assert.property(c.exporters, e, `${p.name}: exporter ${e} is defined`)
    }
    c.pipeline("traces")
    c.pipeline("metrics")
  })

  it("OTLP/HTTP comes in on 4318, where the guide and compose send it", () => {
    const c = collector()
    const services = compose()
    const otlp = Object.entries(c.receivers).filter(([name]) => typeOf(name) === "otlp")
    assert.strictEqual(otlp.length, 1, "one otlp receiver")
    const [name, receiver] = otlp[0]!
    const protocols = record(record(receiver, name).protocols, `${name}.protocols`)
    const http = endpointOf(protocols.http, `${name}.protocols.http`)
    assert.strictEqual(http.port, 4318)
    for (const signal of ["traces", "metrics"]) {
      for (const p of c.pipeline(signal)) assert.include(p.receivers, name, `${p.name} receives OTLP`)
    }
    // The collector container runs this file and publishes its OTLP port.
    const col = serviceOf(services, "opentelemetry-collector")
    assert.strictEqual(flag(col, "--config"), mountOf(col, "collector.yaml"))
    const published = [...col.ports].filter(([, container]) => container === http.port).map(([host]) => host)
    assert.isAbove(published.length, 0, `${col.name} publishes ${http.port}`)
    // Every OTLP endpoint the guide gives is that published port.
    const given = [
      ...guidePorts(/OTEL_EXPORTER_OTLP_ENDPOINT=http:\/\/localhost:(\d+)/g),
      ...guidePorts(/endpoint: "http:\/\/localhost:(\d+)"/g)
    ]
    assert.isAbove(given.length, 0, "the guide gives the OTLP endpoint")
    for (const port of given) assert.include(published, port, `the guide's OTLP endpoint localhost:${port}`)
    if (protocols.grpc !== undefined) {
      const grpc = endpointOf(protocols.grpc, `${name}.protocols.grpc`).port
      assert.include([...col.ports.values()], grpc, `${col.name} publishes gRPC ${grpc}`)
    }
  })

  it("traces go to the Jaeger service of compose, over OTLP", () => {
    const c = collector()
    const jaeger = serviceOf(compose(), "jaeger")
    assert.notStrictEqual(String(jaeger.environment.COLLECTOR_OTLP_ENABLED ?? "true"), "false")
    for (const p of c.pipeline("traces")) {
      for (const name of p.exporters) {
        const type = typeOf(name)
        assert.include(["otlp", "otlphttp"], type, `${p.name}: exporter ${name} speaks OTLP`)
        const { host, port } = endpointOf(c.exporters[name], name)
        assert.strictEqual(host, jaeger.name, `${name} sends to the ${jaeger.name} service`)
        // Jaeger takes OTLP gRPC on 4317, OTLP/HTTP on 4318.
        assert.strictEqual(port, type === "otlp" ? 4317 : 4318, `${name}'s port`)
      }
    }
  })

  it("Prometheus scrapes the collector's Prometheus exporter and the daemon's control port the guide configures", () => {
    const c = collector()
    const services = compose()
    const targets = scrapeTargets()
    const col = serviceOf(services, "opentelemetry-collector")
    const exporters = c.pipeline("metrics").flatMap((p) => p.exporters).filter((name) => typeOf(name) === "prometheus")
    assert.isAbove(exporters.length, 0, "metrics go to a prometheus exporter")
    for (const name of exporters) {
      const port = endpointOf(c.exporters[name], name).port
      assert.isTrue(
        targets.some((t) => t.target === `${col.name}:${port}` && t.metricsPath === "/metrics"),
        `prometheus.yml scrapes ${col.name}:${port}: ${JSON.stringify(targets)}`
      )
    }

    const prometheus = serviceOf(services, "prom/prometheus")
    assert.strictEqual(flag(prometheus, "--config.file"), mountOf(prometheus, "prometheus.yml"))
    // The daemon on the host, reached from the container.
    const daemon = targets.filter((t) => t.target.startsWith("host.docker.internal:"))
    assert.strictEqual(daemon.length, 1, "one target on the host: the daemon")
    assert.strictEqual(daemon[0]!.metricsPath, "/metrics")
    assert.include(prometheus.extraHosts, "host.docker.internal:host-gateway")
    const port = hostPort(daemon[0]!.target).port
    const configured = guidePorts(/control: \{[^}]*port: (\d+)/g)
    assert.isAbove(configured.length, 0, "the guide configures a control port")
    for (const p of configured) assert.strictEqual(p, port, "the guide's control port is the one Prometheus scrapes")
  })

  it("the guide's and the dashboards' localhost addresses are ports compose publishes, for the right service", () => {
    const services = compose()
    const published = new Map([...services.values()].flatMap((s) => [...s.ports].map(([host, container]) => [host, { s, container }] as const)))
    const dashboards = Dashboards.files().map((f) => Fs.readFileSync(Path.join(Dashboards.DIR, f), "utf8")).join("\n")
    for (const port of [...guide.matchAll(/localhost:(\d+)/g), ...dashboards.matchAll(/localhost:(\d+)/g)].map((m) => Number(m[1]))) {
      assert.isTrue(published.has(port), `localhost:${port} is published by a service`)
    }
    const ui = (name: RegExp, image: string, containerPort: number) => {
      const ports = guidePorts(name)
      assert.isAbove(ports.length, 0, `the guide gives ${name}`)
      for (const port of ports) {
        const entry = published.get(port)
        assert.strictEqual(entry?.s.name, serviceOf(services, image).name, `localhost:${port} is ${image}`)
        assert.strictEqual(entry?.container, containerPort, `localhost:${port} reaches ${image}'s ${containerPort}`)
      }
    }
    ui(/Jaeger on http:\/\/localhost:(\d+)/g, "jaeger", 16686)
    ui(/Prometheus on http:\/\/localhost:(\d+)/g, "prom/prometheus", 9090)
    ui(/Grafana\s+on http:\/\/localhost:(\d+)/g, "grafana", 3000)
  })

  it("Grafana's provisioning loads the dashboards folder and the data sources the dashboards name", () => {
    const services = compose()
    const grafana = serviceOf(services, "grafana")
    // Grafana reads provisioning from this path unless GF_PATHS_PROVISIONING says otherwise.
    const provisioningPath = String(grafana.environment.GF_PATHS_PROVISIONING ?? "/etc/grafana/provisioning")
    assert.strictEqual(grafana.mounts.get(provisioningPath), Path.join(OTEL, "grafana/provisioning"))
    const dashboardsMount = mountOf(grafana, "grafana/dashboards")
    assert.strictEqual(Path.join(OTEL, "grafana/dashboards"), Dashboards.DIR)

    const providersDir = Path.join(OTEL, "grafana/provisioning/dashboards")
    const providers = Fs.readdirSync(providersDir).filter((f) => /\.ya?ml$/.test(f)).flatMap((f) => {
      const config = record(yaml(`grafana/provisioning/dashboards/${f}`), f)
      return Array.isArray(config.providers) ? config.providers.map((p) => record(p, `${f}: provider`)) : []
    })
    assert.isAbove(providers.length, 0, "a dashboard provider")
    for (const provider of providers) {
      assert.strictEqual(text(provider.type || "file"), "file")
      assert.strictEqual(text(record(provider.options, "provider options").path), dashboardsMount)
    }

    const sourcesDir = Path.join(OTEL, "grafana/provisioning/datasources")
    const sources = Fs.readdirSync(sourcesDir).filter((f) => /\.ya?ml$/.test(f)).flatMap((f) => {
      const config = record(yaml(`grafana/provisioning/datasources/${f}`), f)
      return Array.isArray(config.datasources) ? config.datasources.map((d) => record(d, `${f}: datasource`)) : []
    })
    const byUid = new Map(sources.map((d) => [text(d.uid), d]))
    for (const file of Dashboards.files()) {
      const dashboard = Dashboards.load(file)
      const uids = Dashboards.datasourceUids(dashboard)
      assert.isAbove(uids.size, 0, `${file} names its data sources`)
      for (const uid of uids) assert.isTrue(byUid.has(uid), `${file}: data source ${uid} is provisioned`)
      for (const panel of Dashboards.panels(dashboard)) {
        const ds = panel.datasource
        if (ds?.uid !== undefined && ds.type !== undefined) assert.strictEqual(text(byUid.get(ds.uid)?.type), ds.type, panel.title)
      }
      // The Jaeger links of the panels name a provisioned Jaeger data source.
      for (const match of JSON.stringify(dashboard).matchAll(/%22datasource%22:%22(\w+)%22/g)) {
        assert.isTrue(byUid.has(match[1]!), `${file}: a link's data source ${match[1]} is provisioned`)
      }
    }
    // Each data source's URL is a service of compose, on the port it serves.
    const serves: Record<string, { readonly image: string; readonly port: number }> = {
      prometheus: { image: "prom/prometheus", port: 9090 },
      jaeger: { image: "jaeger", port: 16686 }
    }
    for (const source of sources) {
      const expected = serves[text(source.type)]
      assert.isDefined(expected, `a known data source type: ${text(source.type)}`)
      const { host, port } = hostPort(text(source.url))
      assert.strictEqual(host, serviceOf(services, expected!.image).name, `${text(source.name)}'s host`)
      assert.strictEqual(port, expected!.port, `${text(source.name)}'s port`)
    }
  })
})
