// The dashboard's two modal dialogs: a new key shown once (with a copy button that falls back
// to selecting the text) and a confirmation before rotating or revoking. Native <dialog>, so
// focus is trapped, Escape cancels, and the rest of the page is inert while one is open.
import { $ } from './dom.js';

/** Shows a new key once, with a copy button; resolves when the admin closes the dialog. */
export function showSecret(key, title, warnings = []) {
  const dialog = $('#secret-dialog');
  const input = $('#secret-value');
  $('#secret-title').textContent = title;
  $('#secret-help').textContent = `Copy the key now: it is shown this once and cannot be recovered.${warnings?.length ? ` Note: ${warnings.join(' ')}` : ''}`;
  input.value = key;
  $('#copy-status').textContent = '';
  return new Promise((resolve) => {
    dialog.addEventListener(
      'close',
      () => {
        // The key leaves the page with the dialog.
        input.value = '';
        resolve();
      },
      { once: true },
    );
    dialog.showModal();
    $('#copy-secret').focus();
  });
}

export async function copySecret() {
  const input = $('#secret-value');
  try {
    await navigator.clipboard.writeText(input.value);
    $('#copy-status').textContent = 'Copied to the clipboard.';
  } catch {
    // No clipboard access (permissions, older browser): select it for Ctrl+C instead.
    input.focus();
    input.select();
    $('#copy-status').textContent = 'Selected: press Ctrl+C (⌘C on a Mac) to copy.';
  }
}

export function confirmAction(title, text, confirmLabel) {
  const dialog = $('#confirm-dialog');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-yes').textContent = confirmLabel;
  return new Promise((resolve) => {
    let answer = false;
    const yes = () => {
      answer = true;
      dialog.close();
    };
    const no = () => dialog.close();
    $('#confirm-yes').addEventListener('click', yes);
    $('#confirm-no').addEventListener('click', no);
    dialog.addEventListener(
      'close',
      () => {
        $('#confirm-yes').removeEventListener('click', yes);
        $('#confirm-no').removeEventListener('click', no);
        resolve(answer);
      },
      { once: true },
    );
    dialog.showModal();
    $('#confirm-no').focus();
  });
}
