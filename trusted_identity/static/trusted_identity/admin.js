// Trusted Identity admin: copy a revealed secret, and make a reload hide it again.
// No library, no network: the secret never leaves the page except to the clipboard.
"use strict";
(function () {
    function fallbackCopy(text) {
        const area = document.createElement("textarea");
        area.value = text;
        area.setAttribute("readonly", "");
        area.style.position = "fixed";
        area.style.opacity = "0";
        document.body.appendChild(area);
        area.select();
        let copied = false;
        try {
            copied = document.execCommand("copy");
        } catch (error) {
            copied = false;
        }
        document.body.removeChild(area);
        return copied;
    }

    async function copy(text) {
        if (navigator.clipboard && window.isSecureContext) {
            try {
                await navigator.clipboard.writeText(text);
                return true;
            } catch (error) {
                // Permission refused or no focus: try the older way.
            }
        }
        return fallbackCopy(text);
    }

    function selectText(element) {
        const range = document.createRange();
        range.selectNodeContents(element);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
    }

    document.addEventListener("click", async function (event) {
        const button = event.target.closest("[data-ti-copy]");
        if (!button) {
            return;
        }
        const source = document.getElementById(button.dataset.tiCopy);
        if (!source) {
            return;
        }
        const status = document.getElementById(button.dataset.tiCopy.replace(/^secret-/, "copy-status-"));
        const copied = await copy(source.textContent.trim());
        if (!copied) {
            selectText(source);
        }
        if (status) {
            status.textContent = copied ? button.dataset.tiCopied : button.dataset.tiCopyFailed;
        }
        button.setAttribute("data-ti-copy-result", copied ? "copied" : "failed");
    });

    // A Reveal answers a POST. Point the history entry at the page itself, so a
    // reload fetches it again (secret hidden) instead of posting the Reveal again.
    document.addEventListener("DOMContentLoaded", function () {
        const page = document.querySelector("[data-ti-revealed][data-ti-settings-url]");
        if (page && window.history && window.history.replaceState) {
            window.history.replaceState(null, "", page.dataset.tiSettingsUrl + window.location.hash);
        }
        // And land on the revealed secret, whatever the page above it holds.
        const revealed = page && page.querySelector(".ti-secret.ti-revealed");
        if (revealed) {
            revealed.scrollIntoView({block: "center"});
        }
    });

    // A token's lifetime only means something for a platform accepting tokens: the
    // field shows while the chosen form accepts them (without JavaScript, always).
    function showTokenLifetime(select) {
        const field = select.form && select.form.querySelector("[data-ti-tokens-only]");
        if (field) {
            field.hidden = select.value === field.dataset.tiTokensOnly;
        }
    }
    document.addEventListener("change", function (event) {
        if (event.target.matches && event.target.matches("select[name=form]")) {
            showTokenLifetime(event.target);
        }
    });
    document.addEventListener("DOMContentLoaded", function () {
        document.querySelectorAll("form select[name=form]").forEach(showTokenLifetime);
    });

    // On a phone the summary is one card per platform, the failure log one card per
    // failure (admin.css): each figure is labelled with its column's header, as the
    // page's language words it.
    document.addEventListener("DOMContentLoaded", function () {
        document.querySelectorAll("table.ti-summary-table, table.ti-failures-table").forEach(function (table) {
            const headers = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
            table.querySelectorAll("tbody tr").forEach(function (row) {
                [...row.children].forEach(function (cell, index) {
                    if (index > 0 && headers[index] && !cell.hasAttribute("data-label")) {
                        cell.setAttribute("data-label", headers[index]);
                    }
                });
            });
        });
    });
})();
