// SPDX-License-Identifier: LGPL-2.1-or-later
// The "Kernel modules" page of Cockpit: kmodd's org.kmodd1.Manager on the system bus, through
// cockpit.dbus(). Lists the loaded modules (ListLoaded), searches the index (FindModules),
// shows a module's information, plan, reverse dependencies and "why" (GetModuleInfo,
// ListDeps, ListHolders, Explain), loads and unloads with Cockpit's administrative access,
// and follows kmodd's signals. Plain JavaScript, nothing fetched at run time.
"use strict";

(function () {
    const kBusName = "org.kmodd1";
    const kPath = "/org/kmodd1";
    const kInterface = "org.kmodd1.Manager";
    const kRetryMs = 2000; // while kmodd is not running
    const kPollMs = 5000; // modules loaded beside kmodd send no signal
    const kChangeTimeoutMs = 300000; // a load may wait for a polkit prompt or a slow disk

    let client = null;
    let loaded = []; // ListLoaded rows as objects
    let selected = null; // the module whose details are shown
    let lastSearch = "";
    let retryTimer = null;

    const $ = (id) => document.getElementById(id);

    function text(tag, content, className) {
        const element = document.createElement(tag);
        element.textContent = content;
        if (className)
            element.className = className;
        return element;
    }

    function formatSize(bytes) {
        if (bytes >= 1048576)
            return (bytes / 1048576).toFixed(1) + " MiB";
        if (bytes >= 1024)
            return (bytes / 1024).toFixed(0) + " KiB";
        return bytes + " B";
    }

    function isNotRunning(error) {
        return error && (error.name === "org.freedesktop.DBus.Error.ServiceUnknown" ||
                         error.name === "org.freedesktop.DBus.Error.NameHasNoOwner" ||
                         error.problem === "not-found" || error.problem === "disconnected");
    }

    function call(method, args, options) {
        return client.call(kPath, kInterface, method, args, options);
    }

    // ---- connection ------------------------------------------------------------------------

    function showUnavailable(error) {
        $("main").hidden = true;
        $("unavailable").hidden = false;
        $("unavailable-detail").textContent = error && error.message ? "(" + error.message + ")" : "";
        $("summary").textContent = "";
        if (!retryTimer)
            retryTimer = window.setTimeout(() => { retryTimer = null; refreshAll() }, kRetryMs);
    }

    function showFailure(message) {
        const box = $("failure");
        box.textContent = message;
        box.hidden = !message;
    }

    function connect() {
        // superuser "try": Cockpit's administrative access when the user turned it on, so
        // Load and Unload run as root; otherwise kmodd asks polkit.
        client = cockpit.dbus(kBusName, { bus: "system", superuser: "try" });
        client.addEventListener("close", (event, options) => {
            showUnavailable({ message: options.problem || "connection closed" });
            window.setTimeout(connect, kRetryMs);
        });
        client.subscribe({ path: kPath, interface: kInterface }, (path, iface, signal) => {
            if (signal === "IndexRebuilt") {
                refreshProperties();
                if (lastSearch)
                    search(lastSearch);
            } else {
                refreshLoaded();
            }
            if (selected)
                showDetails(selected);
        });
        client.subscribe({ path: kPath, interface: "org.freedesktop.DBus.Properties",
                           member: "PropertiesChanged" }, refreshProperties);
        refreshAll();
    }

    function refreshAll() {
        refreshProperties();
        refreshLoaded();
    }

    // ---- the summary line ------------------------------------------------------------------

    function refreshProperties() {
        client.call(kPath, "org.freedesktop.DBus.Properties", "GetAll", [kInterface])
            .then(([properties]) => {
                const value = (name) => properties[name] ? properties[name].v : undefined;
                let summary = "Kernel " + value("KernelRelease") + ": " + value("ModuleCount") +
                    " modules in the index";
                if (value("IndexVerified") === false)
                    summary += " (checking the module tree)";
                const kernels = value("Kernels") || [];
                if (kernels.length > 1)
                    summary += "; " + kernels.length + " kernels installed";
                $("summary").textContent = summary;
                // [release, modules, state, problem]: a failed write keeps the old index.
                const failed = kernels.filter(kernel => kernel[2] === "failed")
                    .map(kernel => "The index of " + kernel[0] + " could not be written: " +
                         kernel[3] + ". Requests use the previous one; kmodd retries on the next change.");
                $("index-problem").textContent = failed.join(" ");
                $("index-problem").hidden = failed.length === 0;
            })
            .catch(error => { if (isNotRunning(error)) showUnavailable(error) });
    }

    // ---- loaded modules --------------------------------------------------------------------

    function refreshLoaded() {
        call("ListLoaded", [])
            .then(([rows]) => {
                $("unavailable").hidden = true;
                $("main").hidden = false;
                loaded = rows.map(([name, size, refcount, holders, origin]) =>
                    ({ name, size, refcount, holders, origin }));
                renderLoaded();
            })
            .catch(error => {
                if (isNotRunning(error))
                    showUnavailable(error);
                else
                    showFailure("Cannot list the loaded modules: " + error.message);
            });
    }

    function renderLoaded() {
        const filter = $("filter").value.trim().toLowerCase();
        const body = $("loaded").tBodies[0];
        const rows = loaded.filter(module => !filter ||
            module.name.toLowerCase().includes(filter) || module.origin.includes(filter) ||
            module.holders.some(holder => holder.toLowerCase().includes(filter)));
        body.replaceChildren(...rows.map(module => {
            const row = document.createElement("tr");
            row.dataset.module = module.name;
            if (module.name === selected)
                row.classList.add("selected");
            row.append(text("td", module.name), text("td", formatSize(module.size), "number"),
                       text("td", String(module.refcount), "number"),
                       text("td", module.holders.join(", ")));
            const origin = document.createElement("td");
            origin.append(text("span", module.origin, "origin " + module.origin));
            row.append(origin);
            row.addEventListener("click", () => showDetails(module.name));
            return row;
        }));
        $("loaded-count").textContent = "(" + rows.length +
            (rows.length === loaded.length ? ")" : " of " + loaded.length + ")");
    }

    // ---- search ----------------------------------------------------------------------------

    function search(pattern) {
        lastSearch = pattern;
        const list = $("search-results");
        if (!pattern) {
            list.replaceChildren();
            return;
        }
        call("FindModules", [pattern])
            .then(([rows]) => {
                if (pattern !== lastSearch)
                    return; // a newer search is under way
                if (rows.length === 0) {
                    list.replaceChildren(text("li", "No module matches.", "muted"));
                    return;
                }
                list.replaceChildren(...rows.map(([name, description, field, match]) => {
                    const item = document.createElement("li");
                    item.dataset.module = name;
                    item.append(text("strong", name));
                    if (description)
                        item.append(" ", text("span", description, "muted"));
                    if (field === "alias")
                        item.append(" ", text("span", "[alias " + match + "]", "muted"));
                    item.addEventListener("click", () => showDetails(name));
                    return item;
                }));
            })
            .catch(error => list.replaceChildren(text("li", error.message, "muted")));
    }

    // ---- one module ------------------------------------------------------------------------

    function fill(id, values, empty) {
        $(id).textContent = values && values.length ? values.join(", ") : empty;
    }

    function showDetails(name) {
        selected = name;
        renderLoaded();
        $("details").hidden = false;
        $("details-name").textContent = name;
        const isLoaded = loaded.some(module => module.name === name);
        $("details-load").disabled = isLoaded;
        $("details-unload").disabled = !isLoaded;

        Promise.allSettled([call("GetModuleInfo", [name]), call("ListDeps", [name]),
                            call("ListHolders", [name]), call("Explain", [name])])
            .then(([info, deps, holders, why]) => {
                if (selected !== name)
                    return;
                const infoList = $("details-info");
                infoList.replaceChildren();
                $("details-description").textContent = "";
                if (info.status === "fulfilled") {
                    const fields = info.value[0];
                    const value = (key) => fields[key] ? fields[key].v : undefined;
                    $("details-description").textContent = value("description") || "";
                    const rows = [["File", value("path") || (value("builtin") ? "(built in)" : "")],
                                  ["Version", value("version")], ["License", value("license")],
                                  ["Aliases", (value("aliases") || []).join(", ")],
                                  ["Signer", value("signer")],
                                  ["Parameters", (value("parameters") || [])
                                      .map(([param, type, text]) => param + (type ? " (" + type + ")" : "") +
                                           (text ? ": " + text : "")).join("; ")]];
                    for (const [label, content] of rows) {
                        if (content)
                            infoList.append(text("dt", label), text("dd", content));
                    }
                } else {
                    infoList.append(text("dt", "Index"), text("dd", info.reason.message));
                }
                fill("details-deps", deps.status === "fulfilled" ? deps.value[0] : null,
                     deps.status === "fulfilled" ? "nothing" : deps.reason.message);
                if (holders.status === "fulfilled") {
                    const [holding, users, plan, planError] = holders.value;
                    fill("details-holders", holding, "none");
                    fill("details-users", users, "none");
                    $("details-unload-plan").textContent = plan.length ? plan.join(", ")
                        : (planError || "nothing");
                } else {
                    for (const id of ["details-holders", "details-users", "details-unload-plan"])
                        $(id).textContent = holders.reason.message;
                }
                const lines = why.status === "fulfilled" && why.value[0].lines
                    ? why.value[0].lines.v : [why.status === "fulfilled" ? "" : why.reason.message];
                $("details-why").replaceChildren(...lines.map(line => text("li", line)));
            });
    }

    // ---- changes ---------------------------------------------------------------------------

    function change(method, args, done) {
        showFailure("");
        for (const button of document.querySelectorAll("button"))
            button.disabled = true;
        call(method, args, { timeout: kChangeTimeoutMs })
            .then(([modules]) => done(modules))
            .catch(error => showFailure(method + " failed: " + error.message))
            .finally(() => {
                for (const button of document.querySelectorAll("button"))
                    button.disabled = false;
                refreshLoaded();
                if (selected)
                    showDetails(selected);
            });
    }

    function load(name, params) {
        change("Load", [name, params], (inserted) => {
            $("load-name").value = "";
            $("load-params").value = "";
            selected = name;
            showFailure("");
            if (inserted.length === 0)
                showFailure(name + " was loaded already (or is built in).");
        });
    }

    function unload(name) {
        change("Unload", [name], () => { selected = null; $("details").hidden = true });
    }

    // ---- wiring ----------------------------------------------------------------------------

    document.addEventListener("DOMContentLoaded", () => {
        $("filter").addEventListener("input", renderLoaded);
        $("load-form").addEventListener("submit", event => {
            event.preventDefault();
            const name = $("load-name").value.trim();
            if (name)
                load(name, $("load-params").value.trim());
        });
        $("search-form").addEventListener("submit", event => {
            event.preventDefault();
            search($("search").value.trim());
        });
        $("details-load").addEventListener("click", () => selected && load(selected, ""));
        $("details-unload").addEventListener("click", () => selected && unload(selected));
        window.setInterval(() => { if (client && !$("main").hidden) refreshLoaded() }, kPollMs);
        connect();
    });
}());
