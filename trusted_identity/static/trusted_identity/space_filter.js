// Trusted Identity admin: the space filter of a list submits as soon as a space is picked.
// The admin's select2 autocomplete announces the pick through jQuery, so listen there.
"use strict";
window.addEventListener("load", function () {
    const $ = window.django && window.django.jQuery;
    if (!$) {
        return;
    }
    $("select[data-ti-space-filter]").on("change", function () {
        if (this.value) {
            this.form.submit();
        }
    });
});
